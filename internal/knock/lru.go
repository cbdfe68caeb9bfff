package knock

// lru is an intrusive doubly linked list of sources, least recent at head.
type lru struct {
	head, tail *source
}

func (l *lru) pushBack(s *source) {
	s.list = l
	s.prev, s.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = s
	} else {
		l.head = s
	}
	l.tail = s
}

// unlink removes s from l; a nil l is a no-op.
func (l *lru) unlink(s *source) {
	if l == nil {
		return
	}
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		l.head = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		l.tail = s.prev
	}
	s.prev, s.next, s.list = nil, nil, nil
}
