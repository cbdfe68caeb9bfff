// Package rcfile reads the fwknop client's ~/.fwknoprc (client/config_init.c
// in fwknop 2.6.10): INI-like stanzas "[name]" of "VAR value" lines. A run
// applies the [default] stanza, then the stanza named with -n; command
// line options override both.
//
// The package is pure (bytes in, values out) and its values are safe for
// concurrent reads.
package rcfile

import (
	"errors"
	"fmt"
	"strings"
)

// Errors wrapped by Profile's errors.
var (
	ErrSyntax      = errors.New("syntax error")
	ErrUnknownVar  = errors.New("unknown variable")
	ErrUnsupported = errors.New("not supported by Sesame")
	ErrNoStanza    = errors.New("named stanza not found")
)

// maxLineLen is fwknop's MAX_LINE_LEN.
const maxLineLen = 1024

// File is a parsed rc file.
type File struct {
	Name    string
	Stanzas []*Stanza // in file order; names may repeat
}

// Stanza is one "[name]" section and its lines, not yet interpreted
// (fwknop only looks at the stanzas it uses).
type Stanza struct {
	Name  string
	Line  int
	Lines []Line
}

// Line is one non-comment line of a stanza.
type Line struct {
	Num  int
	Text string
}

// Parse splits an rc file into stanzas. Lines whose first character is
// '#', ';', CR, LF or NUL are comments; a line whose first non-blank
// character is '[' and that has a ']' starts a stanza; lines before the
// first stanza are ignored, as fwknop does.
func Parse(name string, src []byte) *File {
	f := &File{Name: name}
	var cur *Stanza
	text := string(src)
	for n := 1; text != ""; n++ {
		raw, rest, _ := strings.Cut(text, "\n")
		text = rest
		if raw == "" || strings.ContainsRune("#;\r\x00", rune(raw[0])) {
			continue
		}
		t := strings.TrimLeft(raw, " \t\v\f\r")
		if strings.HasPrefix(t, "[") {
			if end := strings.IndexByte(t, ']'); end >= 0 {
				cur = &Stanza{Name: t[1:end], Line: n}
				f.Stanzas = append(f.Stanzas, cur)
				continue
			}
		}
		if cur != nil {
			cur.Lines = append(cur.Lines, Line{Num: n, Text: raw})
		}
	}
	return f
}

// Names lists the stanza names in file order (fwknop --stanza-list),
// without duplicates and without "default".
func (f *File) Names() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range f.Stanzas {
		k := strings.ToLower(s.Name)
		if k != "default" && !seen[k] {
			seen[k] = true
			out = append(out, s.Name)
		}
	}
	return out
}

// Has reports whether a stanza of that name (any case) exists.
func (f *File) Has(name string) bool {
	for _, s := range f.Stanzas {
		if strings.EqualFold(s.Name, name) {
			return true
		}
	}
	return false
}

// Error locates a problem: "file:line: VAR: message".
type Error struct {
	File string
	Line int
	Var  string
	Err  error
}

func (e *Error) Error() string {
	if e.Var != "" {
		return fmt.Sprintf("%s:%d: %s: %v", e.File, e.Line, e.Var, e.Err)
	}
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Warning is a variable ignored because Sesame's client does without it.
type Warning struct {
	File string
	Line int
	Var  string
	Msg  string
}

func (w Warning) String() string { return fmt.Sprintf("%s:%d: %s: %s", w.File, w.Line, w.Var, w.Msg) }

// splitParam is fwknop's is_rc_param: sscanf("%s %[^ ;\t\n\r#]"), the
// variable with a trailing ':' (and what follows it) removed, the value
// cut at the first blank, ';' or '#'.
func splitParam(text string) (name, val string, ok bool) {
	t := strings.TrimLeft(text, " \t\v\f\r")
	i := strings.IndexAny(t, " \t\v\f\r")
	if i < 0 {
		return "", "", false
	}
	name, v := t[:i], strings.TrimLeft(t[i:], " \t\v\f\r")
	if c := strings.LastIndexByte(name, ':'); c >= 0 {
		name = name[:c]
	}
	if j := strings.IndexAny(v, " ;\t\n\r#"); j >= 0 {
		v = v[:j]
	}
	return name, v, v != ""
}
