package knockdconf

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

// Guess is what a knockd start command appears to open, read from the
// common firewall command lines (iptables/ip6tables, nft, ufw,
// firewall-cmd, knockd's knock_add helper). It is a heuristic for
// `sesame import knockd`, which shows its work in comments.
type Guess struct {
	Open []service.Range
	// Timeout is an expiry written in the command itself (an nft element's
	// "timeout 30s"); 0 when none.
	Timeout time.Duration
	// ProtoGuessed: the command named ports but no protocol (TCP assumed).
	ProtoGuessed bool
}

var (
	reProto     = regexp.MustCompile(`(?:^|\s)(?:-p|--protocol|proto)\s+(tcp|udp)\b`)
	reDport     = regexp.MustCompile(`(?:--dport|--destination-port|--dports)\s+([0-9][0-9,:]*)`)
	reNftDport  = regexp.MustCompile(`\b(tcp|udp|th)\s+dport\s+(\{[^}]*\}|[0-9]+(?:-[0-9]+)?)`)
	reNftElem   = regexp.MustCompile(`%IP%\s*\.\s*(?:(tcp|udp)\s*\.\s*)?([0-9]+)`)
	reNftTime   = regexp.MustCompile(`\btimeout\s+([0-9]+[smhd])\b`)
	reUfwPort   = regexp.MustCompile(`\bport\s+([0-9][0-9,:]*)`)
	reRichPort  = regexp.MustCompile(`port\s+port=["']?([0-9]+(?:-[0-9]+)?)["']?\s+protocol=["']?(tcp|udp)`)
	reKnockAdd  = regexp.MustCompile(`(?:^|\s)-d\s+([0-9]+)`)
	reNumbers   = regexp.MustCompile(`[0-9]+(?:[-:][0-9]+)?`)
	reIsKnockAd = regexp.MustCompile(`\bknock_add\b`)
)

// GuessOpen reads cmd. ok is false when no port was found.
func GuessOpen(cmd string) (g Guess, ok bool) {
	proto, protoOK := service.TCP, false
	if m := reProto.FindStringSubmatch(cmd); m != nil {
		proto, protoOK = protoOf(m[1]), true
	}
	add := func(p service.Proto, list string) {
		for _, n := range reNumbers.FindAllString(list, -1) {
			first, last, ok := portRange(n)
			if ok {
				g.Open = append(g.Open, service.Range{Proto: p, First: first, Last: last})
			}
		}
	}
	switch {
	case reRichPort.MatchString(cmd):
		for _, m := range reRichPort.FindAllStringSubmatch(cmd, -1) {
			add(protoOf(m[2]), m[1])
		}
		protoOK = true
	case reDport.MatchString(cmd):
		for _, m := range reDport.FindAllStringSubmatch(cmd, -1) {
			add(proto, m[1])
		}
	case reNftDport.MatchString(cmd):
		for _, m := range reNftDport.FindAllStringSubmatch(cmd, -1) {
			p := proto
			if m[1] != "th" {
				p, protoOK = protoOf(m[1]), true
			}
			add(p, m[2])
		}
	case reNftElem.MatchString(cmd):
		for _, m := range reNftElem.FindAllStringSubmatch(cmd, -1) {
			p := proto
			if m[1] != "" {
				p, protoOK = protoOf(m[1]), true
			}
			add(p, m[2])
		}
	case reIsKnockAd.MatchString(cmd) && reKnockAdd.MatchString(cmd):
		add(proto, reKnockAdd.FindStringSubmatch(cmd)[1])
	case strings.Contains(cmd, "ufw") && reUfwPort.MatchString(cmd):
		add(proto, reUfwPort.FindStringSubmatch(cmd)[1])
	}
	if len(g.Open) == 0 {
		return Guess{}, false
	}
	if m := reNftTime.FindStringSubmatch(cmd); m != nil {
		if d, err := parseNftDuration(m[1]); err == nil {
			g.Timeout = d
		}
	}
	g.ProtoGuessed = !protoOK
	return g, true
}

func protoOf(s string) service.Proto {
	if s == "udp" {
		return service.UDP
	}
	return service.TCP
}

// portRange reads "22", "6000:6010" (iptables) or "6000-6010" (nft).
func portRange(s string) (uint16, uint16, bool) {
	a, b, isRange := strings.Cut(strings.ReplaceAll(s, ":", "-"), "-")
	first, err := strconv.ParseUint(a, 10, 16)
	if err != nil || first == 0 {
		return 0, 0, false
	}
	last := first
	if isRange {
		if last, err = strconv.ParseUint(b, 10, 16); err != nil || last < first {
			return 0, 0, false
		}
	}
	return uint16(first), uint16(last), true
}

func parseNftDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.Atoi(n)
		return time.Duration(v) * 24 * time.Hour, err
	}
	return time.ParseDuration(s)
}
