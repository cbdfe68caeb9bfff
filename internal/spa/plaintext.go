package spa

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/service"
)

// CredentialKind says how a packet proves who sent it (docs/protocol.md
// §4.1, cred_kind).
type CredentialKind uint8

// Credential kinds.
const (
	// CredEd25519 is a raw Ed25519 public key (32 bytes), looked up in the
	// gateway's client list.
	CredEd25519 CredentialKind = 1
	// CredX509 is an X.509 certificate chain, leaf first, framed by
	// EncodeChain (docs/protocol.md §9). The plaintext decoder treats it
	// as opaque bytes; the resolver (package pki) parses the framing with
	// ParseChain and verifies the chain. KeyResolver refuses it.
	CredX509 CredentialKind = 2
)

func (k CredentialKind) String() string {
	switch k {
	case CredEd25519:
		return "ed25519"
	case CredX509:
		return "x509"
	}
	return fmt.Sprintf("kind-%d", uint8(k))
}

// Credential is the client's claim of identity carried in the sealed
// plaintext; the signature must verify under the key it resolves to.
type Credential struct {
	Kind CredentialKind
	// Data is the Ed25519 public key (CredEd25519) or the encoded chain
	// (CredX509, see EncodeChain).
	Data []byte
}

const (
	addrNone = 0
	addrV4   = 4
	addrV6   = 6

	serviceSize = 5
	// minPlaintext: kind, cred_len, empty cred, timestamp, duration,
	// addr_tag, svc_count, one service, sig_len, empty sig.
	minPlaintext = 1 + 2 + 8 + 4 + 1 + 1 + serviceSize + 1
)

// errEncode is wrapped by every error of appendBody.
var errEncode = errors.New("spa: cannot encode request")

// appendBody appends the plaintext up to and excluding sig_len.
func appendBody(dst []byte, cred Credential, ts int64, req policy.Request) ([]byte, error) {
	if err := checkCredential(cred.Kind, len(cred.Data)); err != nil {
		return nil, fmt.Errorf("%w: %v", errEncode, err)
	}
	if req.Duration <= 0 {
		return nil, fmt.Errorf("%w: duration %v is not positive", errEncode, req.Duration)
	}
	secs := (req.Duration + time.Second - 1) / time.Second // round up
	if secs > math.MaxUint32 {
		return nil, fmt.Errorf("%w: duration %v too long", errEncode, req.Duration)
	}
	if n := len(req.Services); n == 0 || n > MaxServices {
		return nil, fmt.Errorf("%w: %d services (want 1 to %d)", errEncode, n, MaxServices)
	}
	dst = append(dst, byte(cred.Kind))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(cred.Data)))
	dst = append(dst, cred.Data...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	dst = binary.BigEndian.AppendUint32(dst, uint32(secs))
	switch a := req.Addr.Unmap().WithZone(""); {
	case !a.IsValid():
		dst = append(dst, addrNone)
	case a.IsUnspecified():
		return nil, fmt.Errorf("%w: address %v (leave it unset to mean the packet source)", errEncode, a)
	case a.Is4():
		b := a.As4()
		dst = append(append(dst, addrV4), b[:]...)
	default:
		b := a.As16()
		dst = append(append(dst, addrV6), b[:]...)
	}
	dst = append(dst, byte(len(req.Services)))
	for _, s := range req.Services {
		if (s.Proto != service.TCP && s.Proto != service.UDP) || s.First == 0 || s.First > s.Last {
			return nil, fmt.Errorf("%w: invalid service %v", errEncode, s)
		}
		dst = append(dst, byte(s.Proto))
		dst = binary.BigEndian.AppendUint16(dst, s.First)
		dst = binary.BigEndian.AppendUint16(dst, s.Last)
	}
	return dst, nil
}

// checkCredential enforces the per-kind lengths of docs/protocol.md §4.1.
func checkCredential(kind CredentialKind, n int) error {
	switch kind {
	case CredEd25519:
		if n != 32 {
			return fmt.Errorf("ed25519 credential of %d bytes", n)
		}
	case CredX509:
		if n == 0 || n > MaxSize {
			return fmt.Errorf("x509 credential of %d bytes", n)
		}
	default:
		return fmt.Errorf("unknown credential kind %d", kind)
	}
	return nil
}

func checkSigLen(kind CredentialKind, n int) error {
	if kind == CredEd25519 && n != 64 {
		return fmt.Errorf("ed25519 signature of %d bytes", n)
	}
	if n == 0 {
		return errors.New("empty signature")
	}
	return nil
}

// plaintext is a decoded plaintext. Its slices alias the decoded buffer.
type plaintext struct {
	cred Credential
	ts   int64
	req  policy.Request
	body []byte // the signed part: everything before sig_len
	sig  []byte
}

// reader consumes a byte slice; once short it stays failed.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() byte {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// parsePlaintext decodes pt strictly: every field valid, nothing trailing.
// Errors wrap ErrMalformed.
func parsePlaintext(pt []byte) (plaintext, error) {
	bad := func(format string, a ...any) (plaintext, error) {
		return plaintext{}, fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	r := &reader{b: pt}
	var p plaintext
	p.cred.Kind = CredentialKind(r.u8())
	credLen := int(r.u16())
	if r.bad {
		return bad("truncated")
	}
	if err := checkCredential(p.cred.Kind, credLen); err != nil {
		return bad("%v", err)
	}
	p.cred.Data = r.take(credLen)
	p.ts = int64(r.u64())
	secs := r.u32()
	tag := r.u8()
	if r.bad {
		return bad("truncated")
	}
	if secs == 0 {
		return bad("zero duration")
	}
	p.req.Duration = time.Duration(secs) * time.Second
	switch tag {
	case addrNone:
	case addrV4:
		if b := r.take(4); b != nil {
			p.req.Addr = netip.AddrFrom4([4]byte(b))
		}
	case addrV6:
		if b := r.take(16); b != nil {
			p.req.Addr = netip.AddrFrom16([16]byte(b))
			if p.req.Addr.Is4In6() {
				return bad("IPv4-mapped address")
			}
		}
	default:
		return bad("address tag %d", tag)
	}
	if tag != addrNone && p.req.Addr.IsUnspecified() {
		return bad("unspecified address")
	}
	n := int(r.u8())
	if r.bad {
		return bad("truncated")
	}
	if n == 0 || n > MaxServices {
		return bad("%d services", n)
	}
	p.req.Services = make([]service.Range, n)
	for i := range p.req.Services {
		s := service.Range{Proto: service.Proto(r.u8()), First: r.u16(), Last: r.u16()}
		if r.bad {
			return bad("truncated")
		}
		if (s.Proto != service.TCP && s.Proto != service.UDP) || s.First == 0 || s.First > s.Last {
			return bad("service %d/%d-%d", s.Proto, s.First, s.Last)
		}
		p.req.Services[i] = s
	}
	p.body = pt[:len(pt)-len(r.b)]
	sigLen := int(r.u8())
	if r.bad {
		return bad("truncated")
	}
	if err := checkSigLen(p.cred.Kind, sigLen); err != nil {
		return bad("%v", err)
	}
	p.sig = r.take(sigLen)
	if r.bad {
		return bad("truncated")
	}
	if len(r.b) != 0 {
		return bad("%d trailing bytes", len(r.b))
	}
	return p, nil
}
