// Package service names what a grant opens: a transport protocol and a port,
// written "22/tcp" (knockd and sesame.toml) or "tcp/22" (fwknop), and port
// ranges such as "60000-61000/udp".
//
// The package is pure: no I/O, safe for concurrent use (all values are
// immutable).
package service

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Proto is an IP protocol number. Only TCP and UDP are valid services.
type Proto uint8

// The transport protocols a door or a grant can name.
const (
	TCP Proto = 6
	UDP Proto = 17
)

// String returns "tcp", "udp" or the protocol number.
func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return strconv.Itoa(int(p))
}

// ParseProto accepts "tcp" or "udp" in any case.
func ParseProto(s string) (Proto, error) {
	switch strings.ToLower(s) {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want tcp or udp)", s)
}

// Service is one protocol and port. The zero value is invalid.
type Service struct {
	Proto Proto
	Port  uint16
}

// String formats the service as "22/tcp".
func (s Service) String() string { return fmt.Sprintf("%d/%s", s.Port, s.Proto) }

// Valid reports whether s names TCP or UDP and a non-zero port.
func (s Service) Valid() bool { return (s.Proto == TCP || s.Proto == UDP) && s.Port != 0 }

// ErrSyntax is wrapped by every parse error of this package.
var ErrSyntax = errors.New("invalid service")

// Parse reads "22/tcp", "tcp/22" or "22:tcp" (knockd's form). A bare port is
// TCP only when defaultProto is TCP; pass 0 to require an explicit protocol.
func Parse(s string, defaultProto Proto) (Service, error) {
	r, err := ParseRange(s, defaultProto)
	if err != nil {
		return Service{}, err
	}
	if r.First != r.Last {
		return Service{}, fmt.Errorf("%w %q: a range is not allowed here", ErrSyntax, s)
	}
	return Service{Proto: r.Proto, Port: r.First}, nil
}

// Range is an inclusive port range of one protocol: "60000-61000/udp".
type Range struct {
	Proto       Proto
	First, Last uint16
}

// String formats the range as "60000-61000/udp", or "22/tcp" for one port.
func (r Range) String() string {
	if r.First == r.Last {
		return Service{r.Proto, r.First}.String()
	}
	return fmt.Sprintf("%d-%d/%s", r.First, r.Last, r.Proto)
}

// Contains reports whether s falls inside r.
func (r Range) Contains(s Service) bool {
	return s.Proto == r.Proto && s.Port >= r.First && s.Port <= r.Last
}

// Len is the number of ports in r.
func (r Range) Len() int { return int(r.Last) - int(r.First) + 1 }

// Services lists every service of r in port order.
func (r Range) Services() []Service {
	out := make([]Service, 0, r.Len())
	for p := int(r.First); p <= int(r.Last); p++ {
		out = append(out, Service{r.Proto, uint16(p)})
	}
	return out
}

// ParseRange reads "22/tcp", "tcp/22", "22:tcp", "60000-61000/udp" or
// "udp/60000-61000".
func ParseRange(s string, defaultProto Proto) (Range, error) {
	orig := s
	s = strings.TrimSpace(s)
	var portPart, protoPart string
	if i := strings.IndexAny(s, "/:"); i >= 0 {
		a, b := s[:i], s[i+1:]
		if isAlpha(a) {
			protoPart, portPart = a, b
		} else {
			portPart, protoPart = a, b
		}
	} else {
		portPart = s
	}
	proto := defaultProto
	if protoPart != "" {
		p, err := ParseProto(protoPart)
		if err != nil {
			return Range{}, fmt.Errorf("%w %q: %v", ErrSyntax, orig, err)
		}
		proto = p
	}
	if proto == 0 {
		return Range{}, fmt.Errorf("%w %q: missing protocol (write 22/tcp)", ErrSyntax, orig)
	}
	first, last := portPart, portPart
	if i := strings.IndexByte(portPart, '-'); i >= 0 {
		first, last = portPart[:i], portPart[i+1:]
	}
	f, err := parsePort(first)
	if err != nil {
		return Range{}, fmt.Errorf("%w %q: %v", ErrSyntax, orig, err)
	}
	l, err := parsePort(last)
	if err != nil {
		return Range{}, fmt.Errorf("%w %q: %v", ErrSyntax, orig, err)
	}
	if l < f {
		return Range{}, fmt.Errorf("%w %q: range ends before it starts", ErrSyntax, orig)
	}
	return Range{Proto: proto, First: f, Last: l}, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil || n == 0 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return uint16(n), nil
}

func isAlpha(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return true
}
