package knockdconf

import (
	"fmt"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

// Format writes c in knockd.conf syntax; Parse(Format(c)) gives c back.
// Values must not contain newlines (Parse never produces any).
func (c *Config) Format() string {
	var b strings.Builder
	o := c.Options
	if o.UseSyslog || o.LogFile != "" || o.PidFile != "" || o.Interface != "" {
		b.WriteString("[options]\n")
		if o.UseSyslog {
			b.WriteString("\tUseSyslog\n")
		}
		for _, kv := range [][2]string{{"LogFile", o.LogFile}, {"PidFile", o.PidFile}, {"Interface", o.Interface}} {
			if kv[1] != "" {
				fmt.Fprintf(&b, "\t%s = %s\n", kv[0], kv[1])
			}
		}
	}
	for i := range c.Doors {
		d := &c.Doors[i]
		fmt.Fprintf(&b, "\n[%s]\n", d.Name)
		if d.OneTimeFile != "" {
			fmt.Fprintf(&b, "\tOne_Time_Sequences = %s\n", d.OneTimeFile)
		} else {
			fmt.Fprintf(&b, "\tSequence = %s\n", FormatSequence(d.Sequence))
		}
		fmt.Fprintf(&b, "\tSeq_Timeout = %d\n", d.SeqTimeout/time.Second)
		if d.Flags.Set != 0 || d.Flags.Clear != 0 {
			fmt.Fprintf(&b, "\tTCPFlags = %s\n", d.Flags)
		}
		if d.Target.IsValid() {
			fmt.Fprintf(&b, "\tTarget = %s\n", d.Target)
		}
		for _, kv := range []struct {
			key string
			cmd Command
		}{{"Start_Command", d.Start}, {"Start_Command_6", d.Start6}, {"Stop_Command", d.Stop}, {"Stop_Command_6", d.Stop6}} {
			if kv.cmd.Set {
				fmt.Fprintf(&b, "\t%s = %s\n", kv.key, kv.cmd.Text)
			}
		}
		fmt.Fprintf(&b, "\tCmd_Timeout = %d\n", d.CmdTimeout/time.Second)
	}
	return b.String()
}

// FormatSequence writes a sequence in knockd's syntax ("7000,8000:udp").
func FormatSequence(seq []service.Service) string {
	parts := make([]string, len(seq))
	for i, s := range seq {
		parts[i] = fmt.Sprint(s.Port)
		if s.Proto == service.UDP {
			parts[i] += ":udp"
		}
	}
	return strings.Join(parts, ",")
}
