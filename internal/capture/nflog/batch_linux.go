package nflog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The batched receive loop, used for groups with QThresh > 1 (the bulk
// group that takes a flood's excess). go-nflog spends most of a flooded
// daemon's CPU on allocation: a peeked and a sized read per receive, then a
// message, an attribute list and a pointer per attribute for every packet.
// This loop reads whole kernel batches into one reused buffer and walks
// them in place: the stdlib splits the netlink messages
// (syscall.ParseNetlinkMessage), mdlayher/netlink's AttributeDecoder walks
// the attributes, and only the packet's bytes are copied, once, into the
// hand-off queue (as the go-nflog hook does). The group is configured with
// the same NFULNL_MSG_CONFIG commands go-nflog sends
// (linux/netfilter/nfnetlink_log.h), plus NFULA_CFG_NLBUFSIZ so that one
// kernel message carries a whole batch.

// Netfilter netlink constants (linux/netfilter/nfnetlink.h, nfnetlink_log.h).
const (
	nfnlSubsysULOG   = 4
	nfulnlMsgPacket  = 0
	nfulnlMsgConfig  = 1
	nfulaCfgCmd      = 1
	nfulaCfgMode     = 2
	nfulaCfgNlbufsiz = 3
	nfulaCfgTimeout  = 4
	nfulaCfgQthresh  = 5
	nfulnlCfgBind    = 1
	nfulnlCopyPacket = 2
	nfulaTimestamp   = 3
	nfulaIfindexIn   = 4
	nfulaPayload     = 9
	// batchNlbufsiz is the kernel's per-message buffer for the group
	// (NFULA_CFG_NLBUFSIZ; default about one page): a batch of 64 knocks
	// fits in one message. The receive buffer is charged each message's
	// full size, so larger would hold fewer packets in the same ReadBuffer.
	batchNlbufsiz = 16 << 10
	// recvBufSize holds any one message: the kernel makes a message larger
	// than NLBUFSIZ for a single large packet (up to 64 KiB with a whole-
	// packet copy range), capped at 128 KiB (nfnetlink_log).
	recvBufSize = 128<<10 + 4096
)

// openBatch binds cfg.Group on a socket of its own and starts the batched
// receive loop for s.
func openBatch(ctx context.Context, cfg Config, s *Source) error {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: cfg.NetNS})
	if err != nil {
		return fmt.Errorf("nflog: open netfilter netlink socket: %w", err)
	}
	be32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	mode := append(be32(cfg.CopyRange), nfulnlCopyPacket, 0)
	steps := []struct {
		what  string
		attrs func(*netlink.AttributeEncoder)
	}{
		{"bind", func(ae *netlink.AttributeEncoder) { ae.Bytes(nfulaCfgCmd, []byte{nfulnlCfgBind}) }},
		{"configure", func(ae *netlink.AttributeEncoder) {
			ae.Bytes(nfulaCfgMode, mode)
			ae.Bytes(nfulaCfgNlbufsiz, be32(batchNlbufsiz))
			ae.Bytes(nfulaCfgTimeout, be32(cfg.timeoutCentis()))
			ae.Bytes(nfulaCfgQthresh, be32(cfg.QThresh))
		}},
	}
	for _, st := range steps {
		if err := configure(conn, cfg.Group, st.attrs); err != nil {
			conn.Close()
			if st.what == "bind" {
				return bindError(cfg.Group, fmt.Errorf("could not bind to requested group %d: %w", cfg.Group, err))
			}
			return fmt.Errorf("nflog: %s group %d: %w", st.what, cfg.Group, err)
		}
	}
	rcvbuf, err := setReadBuffer(conn, cfg.ReadBuffer)
	if err != nil {
		conn.Close()
		return fmt.Errorf("nflog: set receive buffer to %d bytes: %w", cfg.ReadBuffer, err)
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return fmt.Errorf("nflog: %w", err)
	}
	s.sockDrops = func() (uint64, error) { return socketDrops(rc) }
	if _, err := s.sockDrops(); err != nil {
		s.sockDrops = nil
	}
	if err := ctx.Err(); err != nil {
		conn.Close()
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.receiveBatches(rc) })
	s.stop = func() error {
		err := conn.Close() // wakes the loop's read with an error
		wg.Wait()
		if err != nil {
			return fmt.Errorf("nflog: close group %d: %w", cfg.Group, err)
		}
		return nil
	}
	s.log.Info("nflog source open", "read_buffer", rcvbuf, "qthresh", cfg.QThresh,
		"queue", cfg.QueueLen, "copy_range", cfg.CopyRange, "batched", true)
	return nil
}

// configure sends one NFULNL_MSG_CONFIG for group with the attributes fill
// encodes, and waits for the kernel's acknowledgement.
func configure(conn *netlink.Conn, group uint16, fill func(*netlink.AttributeEncoder)) error {
	ae := netlink.NewAttributeEncoder()
	fill(ae)
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	// struct nfgenmsg: family AF_UNSPEC, version NFNETLINK_V0, res_id = group (big endian).
	data := binary.BigEndian.AppendUint16([]byte{unix.AF_UNSPEC, unix.NFNETLINK_V0}, group)
	_, err = conn.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(nfnlSubsysULOG<<8 | nfulnlMsgConfig),
			Flags: netlink.Request | netlink.Acknowledge,
		},
		Data: append(data, attrs...),
	})
	return err
}

// receiveBatches reads until the socket is closed or fails.
func (s *Source) receiveBatches(rc syscall.RawConn) {
	buf := make([]byte, recvBufSize)
	for {
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			return rerr != unix.EAGAIN
		})
		select {
		case <-s.done:
			return
		default:
		}
		if err == nil {
			err = rerr
		}
		switch {
		case err == nil:
			if bad := parseBatch(buf[:n], s.deliver); bad > 0 {
				s.q.malformed.Add(uint64(bad))
			}
		case errors.Is(err, unix.ENOBUFS):
			s.overflow()
		case errors.Is(err, unix.EINTR):
		default:
			s.fail(err)
			return
		}
	}
}

// parseBatch walks the NFLOG packet messages in one received buffer and
// calls deliver for each with its payload (aliasing b), the kernel's
// timestamp (zero when absent) and the input interface. It returns how many
// packet messages were malformed (no payload, bad attributes); other message
// types (acks, errors, DONE) are skipped. b comes from the kernel, but the
// payload inside is attacker bytes: nothing here trusts a length it has not
// checked.
func parseBatch(b []byte, deliver func(payload []byte, t time.Time, inDev uint32, hasDev bool)) (malformed int) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return 1
	}
	for _, m := range msgs {
		if m.Header.Type != nfnlSubsysULOG<<8|nfulnlMsgPacket {
			continue
		}
		if len(m.Data) < 4 { // struct nfgenmsg
			malformed++
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			malformed++
			continue
		}
		var payload []byte
		var t time.Time
		var dev uint32
		hasDev := false
		for ad.Next() {
			switch ad.Type() {
			case nfulaPayload:
				ad.Do(func(p []byte) error { payload = p; return nil })
			case nfulaTimestamp:
				ad.Do(func(p []byte) error {
					if len(p) == 16 { // struct nfulnl_msg_packet_timestamp: sec, usec (be64)
						sec, usec := binary.BigEndian.Uint64(p), binary.BigEndian.Uint64(p[8:])
						if sec != 0 && sec < 1<<40 && usec < 1_000_000 {
							t = time.Unix(int64(sec), int64(usec)*1000)
						}
					}
					return nil
				})
			case nfulaIfindexIn:
				ad.Do(func(p []byte) error {
					if len(p) == 4 {
						dev, hasDev = binary.BigEndian.Uint32(p), true
					}
					return nil
				})
			}
		}
		if ad.Err() != nil || payload == nil {
			malformed++
			continue
		}
		deliver(payload, t, dev, hasDev)
	}
	return malformed
}
