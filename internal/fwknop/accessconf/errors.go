package accessconf

import (
	"errors"
	"fmt"
)

// Sentinel errors wrapped by *Error.
var (
	// ErrSyntax: a line or value fwknopd would refuse (or misread).
	ErrSyntax = errors.New("syntax error")
	// ErrUnknownKey: a key fwknopd does not know. fwknopd logs and
	// ignores these; Sesame refuses them because a typo would otherwise
	// silently drop a restriction.
	ErrUnknownKey = errors.New("unknown key")
	// ErrUnsupported: a key fwknopd knows but Sesame does not implement
	// with the value given, and ignoring it would change what is granted.
	ErrUnsupported = errors.New("not supported by Sesame")
	// ErrInvalid: a stanza or file fwknopd would refuse as a whole (no
	// keys, identical keys, CMD_CYCLE_OPEN without CMD_CYCLE_CLOSE, ...).
	ErrInvalid = errors.New("invalid configuration")
)

// Error locates a configuration error: "file:line: KEY: message".
type Error struct {
	File string
	Line int // 0 when the error concerns a whole stanza or file
	Key  string
	Err  error
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Key != "" {
		return fmt.Sprintf("%s: %s: %v", loc, e.Key, e.Err)
	}
	return fmt.Sprintf("%s: %v", loc, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Warning is something Sesame ignores or adjusts where doing so is safe
// (it can only make Sesame grant less, or it restates a default); the
// caller should log it.
type Warning struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (w Warning) String() string {
	if w.Key != "" {
		return fmt.Sprintf("%s:%d: %s: %s", w.File, w.Line, w.Key, w.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", w.File, w.Line, w.Msg)
}
