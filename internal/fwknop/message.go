package fwknop

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/sesame-gw/sesame/internal/service"
)

// MsgType is the SPA message type (libfko fko_message_type_t), field 5 of
// the encoded data.
type MsgType uint8

// The seven message types of protocol 3.0.0.
const (
	CommandMsg                     MsgType = 0 // message = "ip,command"
	AccessMsg                      MsgType = 1 // message = "ip,proto/port[,...]" (the default)
	NATAccessMsg                   MsgType = 2 // + nat_access "host,port"
	ClientTimeoutAccessMsg         MsgType = 3 // + client_timeout
	ClientTimeoutNATAccessMsg      MsgType = 4 // + nat_access, client_timeout
	LocalNATAccessMsg              MsgType = 5 // + nat_access
	ClientTimeoutLocalNATAccessMsg MsgType = 6 // + nat_access, client_timeout
)

var msgTypeNames = [...]string{
	"command", "access", "NAT access", "client timeout access",
	"client timeout NAT access", "local NAT access", "client timeout local NAT access",
}

// Valid reports whether t is 0..6.
func (t MsgType) Valid() bool { return t <= ClientTimeoutLocalNATAccessMsg }

// String names the type as fwknop's documentation does.
func (t MsgType) String() string {
	if t.Valid() {
		return msgTypeNames[t]
	}
	return fmt.Sprintf("MsgType(%d)", uint8(t))
}

// HasNAT reports whether a nat_access field belongs to the type (2, 4, 5, 6).
func (t MsgType) HasNAT() bool {
	return t == NATAccessMsg || t == ClientTimeoutNATAccessMsg ||
		t == LocalNATAccessMsg || t == ClientTimeoutLocalNATAccessMsg
}

// HasTimeout reports whether a client_timeout field belongs to the type
// (3, 4, 6).
func (t MsgType) HasTimeout() bool {
	return t == ClientTimeoutAccessMsg || t == ClientTimeoutNATAccessMsg ||
		t == ClientTimeoutLocalNATAccessMsg
}

// IsLocalNAT reports whether the type asks for local NAT (5, 6).
func (t MsgType) IsLocalNAT() bool {
	return t == LocalNATAccessMsg || t == ClientTimeoutLocalNATAccessMsg
}

// withTimeout applies libfko's fko_set_spa_client_timeout rule: a
// timeout > 0 promotes 1→3, 2→4, 5→6; a zero timeout demotes them back.
func (t MsgType) withTimeout(timeout uint32) MsgType {
	if timeout > 0 {
		switch t {
		case AccessMsg:
			return ClientTimeoutAccessMsg
		case NATAccessMsg:
			return ClientTimeoutNATAccessMsg
		case LocalNATAccessMsg:
			return ClientTimeoutLocalNATAccessMsg
		}
		return t
	}
	switch t {
	case ClientTimeoutAccessMsg:
		return AccessMsg
	case ClientTimeoutNATAccessMsg:
		return NATAccessMsg
	case ClientTimeoutLocalNATAccessMsg:
		return LocalNATAccessMsg
	}
	return t
}

// DefaultVersion is the protocol version string of the 2.6.10 and 2.6.11
// clients (FKO_PROTOCOL_VERSION).
const DefaultVersion = "3.0.0"

// Message is one SPA message: the fields of the encoded data, named after
// libfko's, plus forms parsed from them. Decode fills every field; Encode
// reads the wire fields and ignores the parsed ones.
//
// Its JSON form (MarshalJSON) has exactly the keys rand, user,
// timestamp, version, msg_type, access, nat_access, server_auth,
// client_timeout and digest_type; absent optional fields are null.
type Message struct {
	// Rand is the 16-digit decimal random value. Encode generates one
	// when empty.
	Rand string
	// User is the user name (fwknop -U, else the login name).
	User string
	// Timestamp is the client's Unix time in seconds.
	Timestamp int64
	// Version is the client's protocol version; Encode uses
	// DefaultVersion when empty. Not validated beyond 1..8 chars.
	Version string
	// Type is the message type. Its zero value is CommandMsg (the wire
	// value 0); Encode refuses it without EncodeOptions.Command, so set
	// AccessMsg for an access request. Encode applies fwknop's promotion rule:
	// a ClientTimeout > 0 turns 1/2/5 into 3/4/6 and zero turns them back.
	Type MsgType
	// Access is the message field: "allow_ip,proto/port[,proto/port...]"
	// for access types, "allow_ip,command" for CommandMsg.
	Access string
	// NATAccess is "host,port" for NAT types, else empty.
	NATAccess string
	// ServerAuth is the optional server_auth field (never sent by the
	// 2.6.10 client; fwknopd parses and ignores it). Empty means absent.
	ServerAuth string
	// ClientTimeout is the requested access time in seconds (types 3, 4,
	// 6; fwknop -f). 0..65536.
	ClientTimeout uint32
	// Digest is the inner digest algorithm (fwknop -m); Encode uses
	// SHA256 when zero. Decode infers it from the digest length, trying
	// SHA-2 before SHA-3 as libfko does.
	Digest Hash

	// AllowIP is the IPv4 address of Access; 0.0.0.0 asks the server to
	// use the packet's source address (fwknop -s).
	AllowIP netip.Addr
	// Services are the proto/port pairs of an access message, in order.
	Services []service.Service
	// Command is the command text of a CommandMsg.
	Command string
	// NATHost and NATPort split NATAccess (host is an IPv4 address or a
	// name; it is not resolved).
	NATHost string
	NATPort uint16
}

// jsonMessage fixes the key set and order of the decode tool's output.
type jsonMessage struct {
	Rand          string  `json:"rand"`
	User          string  `json:"user"`
	Timestamp     int64   `json:"timestamp"`
	Version       string  `json:"version"`
	MsgType       uint8   `json:"msg_type"`
	Access        string  `json:"access"`
	NATAccess     *string `json:"nat_access"`
	ServerAuth    *string `json:"server_auth"`
	ClientTimeout *uint32 `json:"client_timeout"`
	DigestType    string  `json:"digest_type"`
}

// MarshalJSON writes the decode tool's object: nat_access is null unless
// the type carries one, client_timeout is null unless the type carries
// one, server_auth is null when empty; digest_type is the algorithm name
// ("sha256").
func (m Message) MarshalJSON() ([]byte, error) {
	j := jsonMessage{
		Rand: m.Rand, User: m.User, Timestamp: m.Timestamp, Version: m.Version,
		MsgType: uint8(m.Type), Access: m.Access, DigestType: m.Digest.String(),
	}
	if m.Type.HasNAT() {
		s := m.NATAccess
		j.NATAccess = &s
	}
	if m.ServerAuth != "" {
		s := m.ServerAuth
		j.ServerAuth = &s
	}
	if m.Type.HasTimeout() {
		t := m.ClientTimeout
		j.ClientTimeout = &t
	}
	return json.Marshal(j)
}
