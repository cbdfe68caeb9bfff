package packet

import "strings"

var flagNames = [8]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}

// Has reports whether every flag in want is set in f.
func (f TCPFlags) Has(want TCPFlags) bool { return f&want == want }

// String names the set flags in wire-bit order, joined by "|" ("SYN|ACK");
// "0" when none is set.
func (f TCPFlags) String() string {
	if f == 0 {
		return "0"
	}
	var sb strings.Builder
	for i, name := range flagNames {
		if f&(1<<i) == 0 {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte('|')
		}
		sb.WriteString(name)
	}
	return sb.String()
}
