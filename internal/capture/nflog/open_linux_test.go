package nflog

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

func TestOnError(t *testing.T) {
	s := testSource(t, Config{})
	enobufs := &netlink.OpError{Op: "receive", Err: os.NewSyscallError("recvmsg", unix.ENOBUFS)}
	for range 3 {
		if s.onError(enobufs) != 0 {
			t.Fatal("ENOBUFS stopped the loop: the source would go deaf")
		}
	}
	if st := s.Stats(); st.Dropped != 3 {
		t.Errorf("stats %+v, want 3 dropped", st)
	}
	select {
	case <-s.failed:
		t.Fatal("ENOBUFS marked the source failed")
	default:
	}
	if s.onError(&netlink.OpError{Op: "receive", Err: unix.EBADF}) == 0 {
		t.Error("EBADF kept the loop spinning on a dead socket")
	}
	select {
	case <-s.failed:
	default:
		t.Error("a fatal receive error did not fail the source")
	}
	s2 := testSource(t, Config{})
	s2.Close()
	if s2.onError(enobufs) == 0 {
		t.Error("after Close the loop must stop")
	}
}

func TestBindError(t *testing.T) {
	busy := fmt.Errorf("could not bind to requested group 77: %v",
		&netlink.OpError{Op: "receive", Err: unix.EPERM})
	if err := bindError(77, busy); !errors.Is(err, ErrGroupBusy) {
		t.Errorf("bindError(%v) = %v, want ErrGroupBusy", busy, err)
	}
	noCap := fmt.Errorf("could not unbind existing handlers from socket: %v",
		&netlink.OpError{Op: "receive", Err: unix.EPERM})
	if err := bindError(77, noCap); errors.Is(err, ErrGroupBusy) {
		t.Errorf("missing capability reported as busy: %v", err)
	}
}
