package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"syscall"

	"github.com/sesame-gw/sesame/internal/gateway"
	"github.com/sesame-gw/sesame/internal/service"
)

// maxResponse bounds what the client reads (a status with 100 decisions
// and many grants is well under it).
const maxResponse = 64 << 20

// Call sends req to the daemon at path and returns its response. A
// response with OK false is returned as a *RemoteError.
func Call(ctx context.Context, path string, req Request) (Response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED):
			return Response{}, fmt.Errorf("%w on %s (is sesame serve running? is [gateway] control_socket elsewhere?)", ErrNoDaemon, path)
		case errors.Is(err, fs.ErrPermission):
			return Response{}, fmt.Errorf("%s: %w", path, ErrDenied)
		}
		return Response{}, fmt.Errorf("control: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	b, err := json.Marshal(req)
	if err != nil {
		return Response{}, err
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		return Response{}, fmt.Errorf("control: send: %w", err)
	}
	var resp Response
	if err := json.NewDecoder(io.LimitReader(c, maxResponse)).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return Response{}, fmt.Errorf("control: %w", ctx.Err())
		}
		return Response{}, fmt.Errorf("control: reading the response: %w", err)
	}
	if !resp.OK {
		if resp.Error == ErrDenied.Error() {
			return resp, ErrDenied
		}
		return resp, &RemoteError{Msg: resp.Error}
	}
	return resp, nil
}

// Status asks the daemon for its status.
func Status(ctx context.Context, path string) (gateway.Status, error) {
	resp, err := Call(ctx, path, Request{Op: OpStatus})
	if err != nil {
		return gateway.Status{}, err
	}
	if resp.Status == nil {
		return gateway.Status{}, errors.New("control: status response without a status")
	}
	return *resp.Status, nil
}

// Reload asks the daemon to reload its configuration file; a refused
// configuration comes back as a *RemoteError naming the problem.
func Reload(ctx context.Context, path string) error {
	_, err := Call(ctx, path, Request{Op: OpReload})
	return err
}

// Revoke asks the daemon to end addr's grants (all, or only svc when it
// is valid) and returns those it removed.
func Revoke(ctx context.Context, path string, addr netip.Addr, svc service.Service) ([]Revoked, error) {
	req := Request{Op: OpRevoke, Addr: addr.String()}
	if svc.Valid() {
		req.Service = svc.String()
	}
	resp, err := Call(ctx, path, req)
	return resp.Revoked, err
}
