package accessconf

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

// maxCmdArgs is the argument limit of fwknop's strtoargv (MAX_CMDLINE_ARGS
// 30, which leaves 28 usable arguments).
const maxCmdArgs = 28

// CmdCycle is the command pair of a CMD_CYCLE_OPEN stanza, expanded for
// one grant. Sesame runs the words as argv, never through a shell, as
// fwknopd does (run_extcmd splits on blanks, no quoting).
type CmdCycle struct {
	// Open is the argv to run now.
	Open []string
	// Close is the argv to run after CloseAfter; nil when
	// CMD_CYCLE_CLOSE is NONE.
	Close      []string
	CloseAfter time.Duration
}

// CmdVars are the values substituted into CMD_CYCLE_OPEN/CLOSE
// (server/cmd_cycle.c build_cmd):
//
//	$IP, $SRC        the address being granted (allow IP, or the packet
//	                 source for 0.0.0.0)
//	$PKT_SRC         the packet's IP source
//	$DST             the packet's IP destination
//	$PORT, $PROTO    the first requested service: port, protocol number (6, 17)
//	$TIMEOUT         SPA timestamp + the close delay (a Unix time)
//	$CLIENT_TIMEOUT  the close delay in seconds
//
// As in fwknopd a '$' not followed by one of these names is dropped, and
// the names are matched in the order above ($IP before $IPX...).
type CmdVars struct {
	IP, PktSrc, Dst netip.Addr
	Service         service.Service
	Timestamp       int64
	Delay           time.Duration
}

var cmdVarNames = []string{"IP", "SRC", "PKT_SRC", "DST", "PORT", "PROTO", "TIMEOUT", "CLIENT_TIMEOUT"}

// ExpandCmd substitutes v into a CMD_CYCLE template and splits the result
// into argv on blanks. It fails on an empty command, more than 28
// arguments or an expansion of 256 characters or more (fwknopd's limits).
func ExpandCmd(template string, v CmdVars) ([]string, error) {
	var b strings.Builder
	secs := int64(v.Delay / time.Second)
	for i := 0; i < len(template); i++ {
		c := template[i]
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		rest := template[i+1:]
		for _, name := range cmdVarNames {
			if !strings.HasPrefix(rest, name) {
				continue
			}
			switch name {
			case "IP", "SRC":
				b.WriteString(v.IP.String())
			case "PKT_SRC":
				b.WriteString(v.PktSrc.String())
			case "DST":
				b.WriteString(v.Dst.String())
			case "PORT":
				b.WriteString(strconv.Itoa(int(v.Service.Port)))
			case "PROTO":
				b.WriteString(strconv.Itoa(int(v.Service.Proto)))
			case "TIMEOUT":
				b.WriteString(strconv.FormatInt(v.Timestamp+secs, 10))
			case "CLIENT_TIMEOUT":
				b.WriteString(strconv.FormatInt(secs, 10))
			}
			i += len(name)
			break
		}
	}
	s := b.String()
	if len(s) >= cmdCycleBufSize {
		return nil, fmt.Errorf("expanded command longer than %d characters", cmdCycleBufSize-1)
	}
	argv := strings.Fields(s)
	if len(argv) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	if len(argv) > maxCmdArgs {
		return nil, fmt.Errorf("command has %d arguments, at most %d", len(argv), maxCmdArgs)
	}
	return argv, nil
}
