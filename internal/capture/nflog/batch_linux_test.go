package nflog_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sesame-gw/sesame/internal/capture/nflog"
	"github.com/sesame-gw/sesame/internal/netns"
	"github.com/sesame-gw/sesame/internal/netns/netnstest"
	"github.com/sesame-gw/sesame/internal/service"
)

// A batching group (QThresh > 1) is read by the batched loop: every packet
// of a burst arrives, whole and in order, with its source and a time, and
// a second Open of the group is refused as busy.
func TestBatchedGroup(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("running as the helper")
	}
	b := netnstest.New(t, netns.Options{Name: "capnb"})
	netnstest.RequireBinary(t, "nft")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const grp, port, n = 21, 9999, 2000
	nft := b.Command(ctx, b.GW, "nft", "-f", "-")
	nft.Stdin = strings.NewReader(fmt.Sprintf("table inet batch {\n\tchain c {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tudp dport %d log group %d queue-threshold 64 drop\n\t}\n}\n", port, grp))
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}
	fd, err := unix.Open("/run/netns/"+b.GW, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	src, err := nflog.Open(ctx, nflog.Config{Group: grp, QThresh: 64, NetNS: fd, QueueLen: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if second, err := nflog.Open(ctx, nflog.Config{Group: grp, QThresh: 64, NetNS: fd}); err == nil {
		second.Close()
		t.Error("a second Open of a bound group succeeded")
	}

	conn, err := b.DialUDP(b.Client, b.Client4, netip.AddrPortFrom(b.GW4, port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		for i := range n {
			conn.Write([]byte(fmt.Sprintf("packet %05d %s", i, strings.Repeat("x", i%300))))
		}
	}()
	for i := range n {
		p, err := src.ReadPacket(ctx)
		if err != nil {
			t.Fatalf("packet %d: %v (stats %+v)", i, err, src.Stats())
		}
		want := fmt.Sprintf("packet %05d %s", i, strings.Repeat("x", i%300))
		if string(p.Payload) != want || p.Src != b.Client4 || p.Dst != b.GW4 || p.Proto != service.UDP || p.DstPort != port || p.Time.IsZero() {
			t.Fatalf("packet %d: %+v payload %q", i, p.Packet, p.Payload)
		}
	}
	if st := src.Stats(); st.Received != n || st.Malformed != 0 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := src.ReadPacket(ctx); err == nil {
		t.Error("ReadPacket after Close succeeded")
	}
}
