package accessconf

import (
	"fmt"
	"strings"
)

// maxLineLen is fwknop's MAX_LINE_LEN (fgets buffer, terminator included).
const maxLineLen = 1024

// line is one "NAME value" entry of access.conf or fwknopd.conf.
type line struct {
	num      int
	key      string
	val      string // up to ';', CR or LF, trailing blanks removed (2.6.11)
	trailing bool   // the value had trailing blanks, which 2.6.10 kept
}

// lexLines splits a file into entries the way fwknopd's
// sscanf("%s %[^;\n\r]") loop does: lines starting with '#', ';', CR,
// LF or NUL are skipped (Sesame also skips blank lines and lines whose
// first non-blank character is '#' or ';'); the key is the first word
// with a trailing ':' and what follows it removed; the value runs from
// the next non-blank character to ';' or the end of the line. A key
// without a value is an error (fwknopd refuses access.conf then). Lines
// longer than fwknop's 1023 characters are errors too (fgets would have
// split them).
func lexLines(src string) ([]line, []*Error) {
	var out []line
	var errs []*Error
	for n := 1; src != ""; n++ {
		raw, rest, _ := strings.Cut(src, "\n")
		src = rest
		if len(raw) >= maxLineLen {
			errs = append(errs, &Error{Line: n, Err: fmt.Errorf("%w: line longer than %d characters", ErrSyntax, maxLineLen-1)})
			continue
		}
		t := strings.TrimLeft(raw, " \t\v\f")
		if t == "" || strings.ContainsRune("#;\r\x00", rune(t[0])) {
			continue
		}
		i := strings.IndexAny(t, " \t\v\f\r")
		key, v := t, ""
		if i >= 0 {
			key, v = t[:i], t[i:]
		}
		if c := strings.LastIndexByte(key, ':'); c >= 0 {
			key = key[:c]
		}
		v = strings.TrimLeft(v, " \t\v\f\r")
		if j := strings.IndexAny(v, ";\r"); j >= 0 {
			v = v[:j]
		}
		trimmed := strings.TrimRight(v, " \t\v\f")
		if trimmed == "" {
			errs = append(errs, &Error{Line: n, Key: key, Err: fmt.Errorf("%w: no value", ErrSyntax)})
			continue
		}
		out = append(out, line{num: n, key: key, val: trimmed, trailing: len(trimmed) != len(v)})
	}
	return out, errs
}

// isYes is fwknopd's add_acc_bool / strncasecmp(val, "Y", 1): any value
// starting with 'Y' or 'y' is true, anything else false.
func isYes(v string) bool { return v != "" && (v[0] == 'Y' || v[0] == 'y') }

// isNo reports whether v clearly states the default "N".
func isNo(v string) bool { return !isYes(v) }
