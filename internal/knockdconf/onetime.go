package knockdconf

import (
	"strings"

	"github.com/sesame-gw/sesame/internal/service"
)

// OneTimeEntry is one usable line of a One_Time_Sequences file.
type OneTimeEntry struct {
	// Offset is the byte offset of the line's first byte: knockd marks a
	// used sequence by writing '#' there (the man page therefore asks for a
	// leading space on each line).
	Offset int64
	// Line is the 1-based line number.
	Line     int
	Sequence []service.Service
}

// ParseOneTime reads a One_Time_Sequences file: one sequence per line in
// Sequence syntax; blank lines and lines starting with '#' (after leading
// blanks) are skipped, and so are lines that do not parse, as knockd skips
// them. The door's active sequence is the first entry.
func ParseOneTime(src []byte) []OneTimeEntry {
	var out []OneTimeEntry
	off := int64(0)
	for i, raw := range strings.SplitAfter(string(src), "\n") {
		start := off
		off += int64(len(raw))
		line := trim(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		seq, err := ParseSequence(line)
		if err != nil {
			continue
		}
		out = append(out, OneTimeEntry{Offset: start, Line: i + 1, Sequence: seq})
	}
	return out
}
