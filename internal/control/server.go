package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/sesame-gw/sesame/internal/service"
)

// Defaults of Options.
const (
	DefaultTimeout = 30 * time.Second
	DefaultConns   = 4
)

// Options configure Listen. The zero value is ready to use.
type Options struct {
	Logger *slog.Logger
	// Timeout bounds one connection, request to response (DefaultTimeout).
	Timeout time.Duration
	// Conns is how many connections are served at once (DefaultConns);
	// more wait in the kernel's backlog.
	Conns int
	// allow decides on a peer's uid; nil means root only (tests only).
	allow func(uid uint32) bool
}

// Server serves the control socket. Create it with Listen.
type Server struct {
	path string
	h    Handler
	opt  Options
	ln   *net.UnixListener
	ino  uint64   // the socket file's inode, to remove only our own
	lock *os.File // holds the flock on path+".lock"; nil where unsupported
	sem  chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// Listen creates the socket at path (mode 0600; its directory 0755 if
// missing). Every host's daemons share the default path, so Listen never
// takes a socket over from a live daemon:
//
//   - the Server holds an exclusive flock(2) on path+".lock" until Close
//     (the kernel drops it when the process dies): a held lock is a live
//     daemon, ErrInUse, even one too busy to accept;
//   - a socket at path that accepts a connection is a live daemon too
//     (one that takes no lock), ErrInUse;
//   - a socket that refuses connections (ECONNREFUSED: nobody listens) was
//     left by a dead daemon and is replaced;
//   - anything else at path (a file, a socket whose state cannot be told)
//     is left alone and an error returned.
func Listen(path string, h Handler, opt Options) (*Server, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Timeout <= 0 {
		opt.Timeout = DefaultTimeout
	}
	if opt.Conns <= 0 {
		opt.Conns = DefaultConns
	}
	if opt.allow == nil {
		opt.allow = func(uid uint32) bool { return uid == 0 }
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("control: %s: %w", path, err)
	}
	ok := false
	defer func() {
		if !ok {
			lock.Close()
		}
	}()
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("control: %s exists and is not a socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		switch {
		case err == nil:
			c.Close()
			return nil, fmt.Errorf("control: %s: %w", path, ErrInUse)
		case !errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("control: %s: cannot tell whether a daemon listens, not replacing it: %w", path, err)
		}
	}
	// Bind under a temporary name, restrict it, then rename it into place:
	// the socket is never reachable at path with looser permissions.
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	os.Remove(tmp)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	fail := func(err error) (*Server, error) {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control: %w", err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	s := &Server{path: path, h: h, opt: opt, ln: ln, lock: lock, sem: make(chan struct{}, opt.Conns)}
	ok = true
	if st, err := os.Lstat(path); err == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			s.ino = sys.Ino
		}
	}
	return s, nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Serve accepts connections until ctx is done or Close is called, then
// waits for the connections in progress. It returns nil then.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			s.wg.Wait()
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("control: accept: %w", err)
		}
		select {
		case s.sem <- struct{}{}:
		case <-ctx.Done():
			c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer func() { <-s.sem; s.wg.Done() }()
			s.serve(ctx, c)
		}()
	}
}

// Close stops accepting and removes the socket file if it is still the
// one Listen created. It does not wait for connections in progress.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		err = s.ln.Close()
		if st, serr := os.Lstat(s.path); serr == nil {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Ino == s.ino {
				os.Remove(s.path)
			}
		}
		// The lock file stays: removing it could let two daemons lock
		// two different files of the same name.
		if s.lock != nil {
			s.lock.Close()
		}
	})
	return err
}

func (s *Server) serve(ctx context.Context, c *net.UnixConn) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(s.opt.Timeout))
	ctx, cancel := context.WithTimeout(ctx, s.opt.Timeout)
	defer cancel()
	cred, err := peerCred(c)
	if err != nil || !s.opt.allow(cred.uid) {
		s.opt.Logger.Warn("control: connection refused", "uid", cred.uid, "pid", cred.pid, "err", err)
		s.reply(c, Response{Error: ErrDenied.Error()})
		// Let the client finish sending, so it reads the answer rather
		// than a broken pipe; its request is not looked at.
		c.CloseWrite()
		io.Copy(io.Discard, io.LimitReader(c, MaxRequest))
		return
	}
	var req Request
	if err := json.NewDecoder(io.LimitReader(c, MaxRequest)).Decode(&req); err != nil {
		s.reply(c, Response{Error: fmt.Sprintf("bad request: %v", err)})
		return
	}
	resp := s.do(ctx, req)
	s.opt.Logger.Info("control", "op", req.Op, "pid", cred.pid, "ok", resp.OK, "err", resp.Error)
	s.reply(c, resp)
}

func (s *Server) do(ctx context.Context, req Request) Response {
	switch req.Op {
	case OpStatus:
		st, err := s.h.Status(ctx)
		if err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true, Status: &st}
	case OpReload:
		if err := s.h.Reload(ctx); err != nil {
			return Response{Error: err.Error()}
		}
		return Response{OK: true}
	case OpRevoke:
		addr, err := netip.ParseAddr(req.Addr)
		if err != nil {
			return Response{Error: fmt.Sprintf("revoke: address %q: %v", req.Addr, err)}
		}
		var svc service.Service
		if req.Service != "" {
			if svc, err = service.Parse(req.Service, service.TCP); err != nil {
				return Response{Error: fmt.Sprintf("revoke: service: %v", err)}
			}
		}
		gone, err := s.h.Revoke(ctx, addr.Unmap(), svc)
		if err != nil {
			return Response{Error: err.Error()}
		}
		resp := Response{OK: true}
		for _, g := range gone {
			resp.Revoked = append(resp.Revoked, Revoked{Src: g.Addr, Service: g.Service.String()})
		}
		return resp
	}
	return Response{Error: fmt.Sprintf("unknown op %q (status, reload, revoke)", req.Op)}
}

// replyTimeout bounds writing a response, after the request's deadline
// (which may have passed: a handler that timed out still answers).
const replyTimeout = 5 * time.Second

func (s *Server) reply(c *net.UnixConn, r Response) {
	b, _ := json.Marshal(r)
	c.SetWriteDeadline(time.Now().Add(replyTimeout))
	c.Write(append(b, '\n'))
}
