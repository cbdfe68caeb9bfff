package fwknop

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// EncodeOptions tune Encode. The zero value uses crypto/rand.
type EncodeOptions struct {
	// Rand supplies the 16-digit random value (when Message.Rand is
	// empty) and the 8-byte salt, in that order. Tests inject a fixed
	// reader to get deterministic packets.
	Rand io.Reader
	// Command must be true to encode a CommandMsg. MsgType's zero value
	// is CommandMsg (its wire value), so a Message whose Type was left
	// unset would otherwise ask the server to run its access text as a
	// command.
	Command bool
}

// Encode builds the wire form of m, as the fwknop 2.6.10 client does
// (fko_spa_data_final): the fields of m, their digest, AES-256-CBC with a
// fresh salt, the "U2FsdGVkX1" prefix removed, and the HMAC appended when
// keys carry an HMAC key.
//
// Defaults: Version DefaultVersion, Digest SHA256, a generated Rand. The
// message type follows fwknop's timeout rule (see Message.Type). Every
// field is validated with the rules Decode applies, so Encode never
// produces a packet fwknopd rejects for its format, and the result is
// checked against fwknopd's limits: at least 140 characters and fewer
// than 400 (ErrTooLong beyond; fewer or shorter proto/port lists help).
// As the stock client does, Encode refuses legacy mode combined with an
// HMAC key. A CommandMsg needs opts.Command.
func Encode(m Message, keys Keys, opts EncodeOptions) (string, error) {
	if err := keys.Validate(); err != nil {
		return "", err
	}
	if keys.Mode == ModeLegacy && len(keys.HMACKey) > 0 {
		return "", fmt.Errorf("%w: legacy encryption mode cannot be combined with an HMAC key", ErrKeys)
	}
	if m.Type == CommandMsg && !opts.Command {
		return "", fmt.Errorf("%w: command message (type 0) without EncodeOptions.Command; set Type to AccessMsg for an access request", ErrMessage)
	}
	r := opts.Rand
	if r == nil {
		r = rand.Reader
	}
	enc, digest, err := encodeFields(&m, r)
	if err != nil {
		return "", err
	}
	pt := make([]byte, 0, len(enc)+1+digest.B64Len()+aes.BlockSize)
	pt = append(pt, enc...)
	pt = append(pt, ':')
	var sum [64]byte
	pt = b64.AppendEncode(pt, digest.sum(sum[:0], []byte(enc)))
	if len(pt) >= maxEncodedLen {
		return "", fmt.Errorf("%w: plaintext of %d bytes", ErrTooLong, len(pt))
	}

	var salt [8]byte
	if _, err := io.ReadFull(r, salt[:]); err != nil {
		return "", fmt.Errorf("fwknop encode: reading salt: %w", err)
	}
	pad := aes.BlockSize - len(pt)%aes.BlockSize
	for range pad {
		pt = append(pt, byte(pad))
	}
	key, iv := deriveKeyIV(passphrase(keys.Key, keys.Mode), salt[:])
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return "", fmt.Errorf("fwknop encode: %w", err)
	}
	blob := make([]byte, 16+len(pt))
	copy(blob, "Salted__")
	copy(blob[8:], salt[:])
	cipher.NewCBCEncrypter(block, iv[:]).CryptBlocks(blob[16:], pt)
	text := b64.EncodeToString(blob)
	if !strings.HasPrefix(text, saltedPrefix) {
		return "", fmt.Errorf("fwknop encode: internal error: missing %s prefix", saltedPrefix)
	}
	wire := text[len(saltedPrefix):]
	if h := keys.hmacHash(); h != 0 {
		wire += string(hmacB64(h, keys.HMACKey, []byte(wire)))
	}
	switch {
	case len(wire) >= GPGPacketLen:
		return "", fmt.Errorf("%w: %d characters; a stock fwknopd ignores it (request fewer ports or a shorter digest)", ErrTooLong, len(wire))
	case len(wire) < MinPacketLen:
		return "", fmt.Errorf("fwknop encode: packet of %d characters is shorter than fwknopd's %d minimum (use a longer digest type)", len(wire), MinPacketLen)
	}
	return wire, nil
}

// encodeFields validates m, fills its defaults and returns ENCODED and
// the digest type (lib/fko_encode.c fko_encode_spa_data).
func encodeFields(m *Message, r io.Reader) (string, Hash, error) {
	fail := func(format string, a ...any) (string, Hash, error) {
		return "", 0, fmt.Errorf("%w: "+format, append([]any{ErrMessage}, a...)...)
	}
	if m.Version == "" {
		m.Version = DefaultVersion
	}
	if m.Digest == 0 {
		m.Digest = SHA256
	}
	if !m.Digest.Valid() {
		return fail("invalid digest type %d", m.Digest)
	}
	if m.Rand == "" {
		v, err := RandomValue(r)
		if err != nil {
			return "", 0, err
		}
		m.Rand = v
	}
	if len(m.Rand) != randLen || !isDigits(m.Rand) {
		return fail("random value %q is not 16 digits", m.Rand)
	}
	if err := ValidateUser(m.User); err != nil {
		return fail("%v", err)
	}
	if b64.EncodedLen(len(m.User)) > maxUserB64Len {
		return fail("user name longer than %d bytes", maxUserB64Len*3/4)
	}
	if m.Timestamp < 0 || m.Timestamp > 1<<32-1 {
		return fail("timestamp %d out of range", m.Timestamp)
	}
	if len(m.Version) > maxVersionLen || strings.ContainsRune(m.Version, ':') || checkPrintable(m.Version) != nil {
		return fail("version %q must be 1..%d printable characters without ':'", m.Version, maxVersionLen)
	}
	if !m.Type.Valid() {
		return fail("invalid message type %d", m.Type)
	}
	if m.ClientTimeout > maxClientTimeout {
		return fail("client timeout %d exceeds %d", m.ClientTimeout, maxClientTimeout)
	}
	m.Type = m.Type.withTimeout(m.ClientTimeout)
	if err := parseMessageText(m); err != nil {
		return fail("%v", err)
	}
	if b64.EncodedLen(len(m.Access)) > maxFieldB64Len {
		return fail("message longer than %d bytes", maxFieldB64Len*3/4)
	}
	if m.Type.HasNAT() != (m.NATAccess != "") {
		return fail("nat_access must be set exactly for NAT message types")
	}
	var b strings.Builder
	b.WriteString(m.Rand)
	b.WriteByte(':')
	b.WriteString(b64.EncodeToString([]byte(m.User)))
	b.WriteByte(':')
	b.WriteString(strconv.FormatInt(m.Timestamp, 10))
	b.WriteByte(':')
	b.WriteString(m.Version)
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(int(m.Type)))
	b.WriteByte(':')
	b.WriteString(b64.EncodeToString([]byte(m.Access)))
	if m.NATAccess != "" {
		var err error
		if m.NATHost, m.NATPort, err = ParseNATAccess(m.NATAccess); err != nil {
			return fail("%v", err)
		}
		if b64.EncodedLen(len(m.NATAccess)) > maxFieldB64Len {
			return fail("nat_access too long")
		}
		b.WriteByte(':')
		b.WriteString(b64.EncodeToString([]byte(m.NATAccess)))
	}
	if m.ServerAuth != "" {
		if err := checkPrintable(m.ServerAuth); err != nil || b64.EncodedLen(len(m.ServerAuth)) > maxFieldB64Len {
			return fail("server_auth must be printable and at most %d bytes", maxFieldB64Len*3/4)
		}
		b.WriteByte(':')
		b.WriteString(b64.EncodeToString([]byte(m.ServerAuth)))
	}
	if m.Type.HasTimeout() {
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(uint64(m.ClientTimeout), 10))
	}
	enc := b.String()
	if len(enc) < minEncodedLen || len(enc) >= maxEncodedLen {
		return fail("encoded data of %d bytes is outside %d..%d", len(enc), minEncodedLen, maxEncodedLen-1)
	}
	return enc, m.Digest, nil
}

func checkPrintable(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return fmt.Errorf("non-printable byte at offset %d", i)
		}
	}
	return nil
}

// RandomValue returns a 16-digit decimal random value (fwknop's
// FKO_RAND_VAL_SIZE field), uniformly distributed, read from r.
func RandomValue(r io.Reader) (string, error) {
	const span = 10_000_000_000_000_000 // 10^16
	const limit = (1<<64 - 1) / span * span
	var b [8]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", fmt.Errorf("fwknop: reading random value: %w", err)
		}
		if v := binary.BigEndian.Uint64(b[:]); v < limit {
			return fmt.Sprintf("%016d", v%span), nil
		}
	}
}
