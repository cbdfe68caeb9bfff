package config

import (
	"strings"
)

// locate finds the line (1-based) that sets key in the index-th instance of
// table (an array of tables such as "door", or a plain table, or "" for the
// top level). It returns 0 when the key is not written in the file (a
// default) — callers then name the table's header line instead.
//
// It is a line-oriented scan good enough for error messages: the TOML has
// already been parsed successfully when it runs.
func locate(src, table string, index int, key string) int {
	lines := strings.Split(src, "\n")
	cur, n := "", -1
	header := 0
	for i, raw := range lines {
		l := strings.TrimSpace(raw)
		switch {
		case strings.HasPrefix(l, "[["):
			cur = strings.TrimSpace(strings.Trim(strings.SplitN(l, "]]", 2)[0], "[ "))
			if cur == table {
				n++
				if n == index {
					header = i + 1
				}
			}
			continue
		case strings.HasPrefix(l, "["):
			cur = strings.TrimSpace(strings.Trim(strings.SplitN(l, "]", 2)[0], "[ "))
			if cur == table && index == 0 {
				n, header = 0, i+1
			}
			continue
		}
		if cur != table || (table != "" && n != index) || (table == "" && cur != "") {
			continue
		}
		if key == "" {
			continue
		}
		k, _, ok := strings.Cut(l, "=")
		if ok && strings.Trim(strings.TrimSpace(k), `"'`) == key {
			return i + 1
		}
	}
	return header
}
