// Package control is the daemon's control socket: a unix stream socket
// (default /run/sesame/control.sock, mode 0600) on which `sesame status`,
// `sesame reload` and `sesame revoke` talk to `sesame serve`. Only root may
// use it: the socket file is 0600 and every connection's peer credentials
// (SO_PEERCRED) are checked, so loosened file permissions do not open it.
//
// The protocol is one JSON request per connection, one JSON response back,
// then the server closes the connection:
//
//	→ {"op":"status"}
//	← {"ok":true,"status":{"started":...,"doors":[...],"grants":[...],"recent":[...],"counters":{...}}}
//	→ {"op":"reload"}
//	← {"ok":true}                     or {"ok":false,"error":"/etc/sesame/sesame.toml:3: ..."}
//	→ {"op":"revoke","addr":"192.0.2.7","service":"22/tcp"}   (service optional)
//	← {"ok":true,"revoked":[{"src":"192.0.2.7","service":"22/tcp"}]}
//
// Requests are at most MaxRequest bytes; each connection has a deadline.
package control

import (
	"context"
	"errors"
	"net/netip"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/service"
)

// The operations.
const (
	OpStatus = "status"
	OpReload = "reload"
	OpRevoke = "revoke"
)

// MaxRequest bounds a request's size in bytes.
const MaxRequest = 4096

// Request is what a client sends.
type Request struct {
	Op string `json:"op"`
	// Addr and Service are revoke's arguments; an empty Service revokes
	// every grant of Addr.
	Addr    string `json:"addr,omitempty"`
	Service string `json:"service,omitempty"`
}

// Response is what the server answers.
type Response struct {
	OK      bool            `json:"ok"`
	Error   string          `json:"error,omitempty"`
	Status  *gateway.Status `json:"status,omitempty"`
	Revoked []Revoked       `json:"revoked,omitempty"`
}

// Revoked is one grant a revoke removed.
type Revoked struct {
	Src     netip.Addr `json:"src"`
	Service string     `json:"service"`
}

// Handler does the work; the daemon implements it over its engine.
// Methods are called concurrently, one goroutine per connection.
type Handler interface {
	Status(ctx context.Context) (gateway.Status, error)
	// Reload re-reads and validates the configuration file and applies it;
	// an invalid file is refused and the running configuration stays.
	Reload(ctx context.Context) error
	Revoke(ctx context.Context, addr netip.Addr, svc service.Service) ([]firewall.Grant, error)
}

// Errors a client may branch on.
var (
	// ErrNoDaemon: nothing listens on the socket.
	ErrNoDaemon = errors.New("no sesame daemon is listening")
	// ErrInUse: Listen found a live daemon on the socket.
	ErrInUse = errors.New("control socket in use by a running daemon")
	// ErrDenied: the peer is not root.
	ErrDenied = errors.New("permission denied: the control socket is for root only")
)

// RemoteError is an error the daemon reported.
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return e.Msg }
