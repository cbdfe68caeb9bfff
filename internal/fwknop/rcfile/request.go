package rcfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/fwknop"
)

// ErrIncomplete: the profile lacks what a packet needs (allow IP,
// access, key).
var ErrIncomplete = errors.New("incomplete client configuration")

// EncodeKeys returns the key material to encode with: the HMAC key only when
// UseHMAC is set (fwknop sends no HMAC otherwise). --use-hmac without an
// HMAC key, or no encryption key, is an error.
func (p *Profile) EncodeKeys() (fwknop.Keys, error) {
	k := p.Keys
	if len(k.Key) == 0 {
		return fwknop.Keys{}, fmt.Errorf("%w: no encryption key (KEY, KEY_BASE64, --key-rijndael, --key-base64-rijndael)", ErrIncomplete)
	}
	if !p.UseHMAC {
		k.HMACKey, k.HMACHash = nil, 0
	} else if len(k.HMACKey) == 0 {
		return fwknop.Keys{}, fmt.Errorf("%w: HMAC requested but no HMAC key (HMAC_KEY, HMAC_KEY_BASE64, --key-hmac, --key-base64-hmac)", ErrIncomplete)
	}
	return k, k.Validate()
}

// Message builds the SPA message the fwknop 2.6.10 client would send for
// this profile (client/fwknop.c): the allow IP (0.0.0.0 for AllowSource),
// the access list, the user (SpoofUser, else login), the time now plus
// TimeOffset, the client timeout, the digest type, and for NAT:
//
//   - NATPort or NATRandPort replaces the port of a single-entry Access
//     ("tcp/22" with NAT port 55000 sends "ip,tcp/55000");
//   - NATLocal without NATAccess sends nat_access "SPAServer,accessport",
//     NATAccess "host:port" or "host,port" sends "host,port" (the port
//     defaults to the access port).
//
// r supplies the random NAT port; the caller passes it to
// fwknop.Encode (EncodeOptions.Rand) as well.
func (p *Profile) Message(now time.Time, login string, r io.Reader) (fwknop.Message, error) {
	m := fwknop.Message{Type: fwknop.AccessMsg, Timestamp: now.Add(p.TimeOffset).Unix(),
		ClientTimeout: p.FWTimeout, Digest: p.Digest, User: p.SpoofUser}
	if m.User == "" {
		m.User = login
	}
	if m.User == "" {
		m.User = "NO_USER" // fwknop's last resort
	}
	var ip string
	switch {
	case p.AllowSource:
		ip = "0.0.0.0"
	case p.AllowIP.Is4():
		ip = p.AllowIP.String()
	default:
		return m, fmt.Errorf("%w: no allow IP (-a, -s or ALLOW_IP)", ErrIncomplete)
	}
	if p.Access == "" {
		return m, fmt.Errorf("%w: no access list (-A or ACCESS)", ErrIncomplete)
	}
	access := p.Access
	natPort := p.NATPort
	if p.NATRandPort {
		var err error
		if natPort, err = RandomPort(r); err != nil {
			return m, err
		}
	}
	nat := p.NATLocal || p.NATAccess != "" || natPort != 0
	if nat {
		proto, portText, ok := strings.Cut(access, "/")
		accessPort, err := strconv.Atoi(portText)
		if !ok || strings.Contains(portText, ",") || err != nil || accessPort < 1 || accessPort > 65535 {
			return m, fmt.Errorf("%w: NAT needs a single proto/port in the access list, not %q", fwknop.ErrMessage, access)
		}
		if natPort != 0 {
			access = proto + "/" + strconv.Itoa(int(natPort))
		}
		switch {
		case p.NATAccess != "":
			host, port, hasPort := strings.Cut(strings.Replace(p.NATAccess, ":", ",", 1), ",")
			if !hasPort {
				port = strconv.Itoa(accessPort)
			}
			if !fwknop.ValidNATHost(host) {
				return m, fmt.Errorf("%w: invalid NAT destination %q", fwknop.ErrMessage, host)
			}
			m.NATAccess = host + "," + port
		case p.NATLocal:
			m.NATAccess = p.SPAServer + "," + strconv.Itoa(accessPort)
		default:
			return m, fmt.Errorf("%w: a NAT port needs NAT_ACCESS or NAT_LOCAL", fwknop.ErrMessage)
		}
		m.Type = fwknop.NATAccessMsg
		if p.NATLocal {
			m.Type = fwknop.LocalNATAccessMsg
		}
	}
	m.Access = ip + "," + access
	return m, nil
}

// ServerPort returns the UDP port to send to: a random one for RandPort
// (fwknop -r: 10000..65534), else SPAServerPort.
func (p *Profile) ServerPort(r io.Reader) (uint16, error) {
	if p.RandPort {
		return RandomPort(r)
	}
	return p.SPAServerPort, nil
}

// RandomPort returns a port in 10000..65534, the range fwknop's -r and
// --nat-rand-port use (MIN_HIGH_PORT + rand % (65535 - MIN_HIGH_PORT)).
func RandomPort(r io.Reader) (uint16, error) {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, fmt.Errorf("random port: %w", err)
	}
	return uint16(10000 + binary.BigEndian.Uint32(b[:])%55535), nil
}
