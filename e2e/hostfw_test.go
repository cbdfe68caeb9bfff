package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/netns"
)

// hostFirewall gives the gateway namespace what a real server has: a
// default-drop input policy that allows the protected service (as `ufw
// default deny incoming; ufw allow 2222/tcp` does), loaded with nft -f.
// Sesame must work behind it without touching it.
func hostFirewall(t *testing.T, b *netns.Bench) {
	t.Helper()
	rules := fmt.Sprintf(`table inet hostfw {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iifname "lo" accept
		meta l4proto ipv6-icmp accept
		meta l4proto icmp accept
		tcp dport %d accept
	}
}
`, svcPort)
	path := filepath.Join(t.TempDir(), "hostfw.nft")
	if err := os.WriteFile(path, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := b.Command(ctx, b.GW, "nft", "-f", path).CombinedOutput(); err != nil {
		t.Fatalf("nft -f hostfw: %v\n%s", err, out)
	}
}
