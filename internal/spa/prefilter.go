package spa

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"hash"
	"sync"
)

// prefilter checks the cheap outer layer of a datagram: length, magic,
// version and mac1 (docs/protocol.md §5.1). It is safe for concurrent use.
type prefilter struct {
	pool sync.Pool // of *macState
}

type macState struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

func newPrefilter(gw []byte) *prefilter {
	key := prefilterKey(gw)
	p := &prefilter{}
	p.pool.New = func() any { return &macState{h: hmac.New(sha256.New, key)} }
	return p
}

// mac appends mac1 of msg to dst.
func (p *prefilter) mac(dst, msg []byte) []byte {
	s := p.pool.Get().(*macState)
	s.h.Reset()
	s.h.Write(msg)
	dst = append(dst, s.h.Sum(s.sum[:0])[:macSize]...)
	p.pool.Put(s)
	return dst
}

// check returns bare sentinels (no formatting, no allocation): this is the
// path a flood takes, and the caller has the datagram for any detail.
func (p *prefilter) check(b []byte) error {
	switch {
	case len(b) < MinSize:
		return ErrShort
	case len(b) > MaxSize:
		return ErrTooLong
	case b[0] != Magic:
		return ErrMagic
	case b[1] != Version:
		return ErrVersion
	}
	n := len(b) - macSize
	var buf [macSize]byte
	if subtle.ConstantTimeCompare(p.mac(buf[:0], b[:n]), b[n:]) != 1 {
		return ErrPrefilter
	}
	return nil
}
