// Package nftables implements firewall.Firewall with one nftables table,
// talking netlink directly (github.com/google/nftables; no nft binary, no
// libnftnl). Linux only.
//
// The table, as `nft list table inet sesame` shows it (testdata/ holds the
// exact listing, produced by nft 1.0 from testdata/sesame.nft):
//
//	table inet sesame {
//		set grants4  { type ipv4_addr . inet_proto . inet_service; flags timeout; }
//		set grants6  { type ipv6_addr . inet_proto . inet_service; flags timeout; }
//		set protected { type inet_proto . inet_service; }
//		set watched  { type inet_proto . inet_service; }
//		set watch4   { type ipv4_addr; size 131072; flags dynamic,timeout; }
//		set watch6   { type ipv6_addr; size 131072; flags dynamic,timeout; }
//		set allow4   { type ipv4_addr; flags interval; }
//		set allow6   { type ipv6_addr; flags interval; }
//		chain input {
//			type filter hook input priority filter - 10; policy accept;
//			ct state established,related accept
//			ip saddr @allow4 accept
//			ip6 saddr @allow6 accept
//			meta l4proto . th dport @watched update @watch4 { ip saddr timeout T }
//			meta l4proto . th dport @watched update @watch6 { ip6 saddr timeout T }
//			meta l4proto . th dport @watched log group G queue-threshold 1 drop
//			ct state new ip saddr @watch4 log group G queue-threshold 1
//			ct state new ip6 saddr @watch6 log group G queue-threshold 1
//			ip saddr . meta l4proto . th dport @grants4 accept
//			ip6 saddr . meta l4proto . th dport @grants6 accept
//			meta l4proto . th dport @protected drop
//		}
//	}
//
// With a bulk group (firewall.Layout.BulkLogGroup), the watched-port rule
// becomes a rate split that keeps each source's packets in one group from
// its first overflow on, with two dynamic sets bulk4/bulk6 (see rules in
// ruleset.go, docs/firewall.md, and internal/nftlisting, which renders the
// full table for `sesame serve --check`).
//
// The kernel marks knocking sources itself (the two update rules, T =
// firewall.Layout.WatchTimeout; left out when T is 0): the daemon writes
// no watch elements, and the sets are bounded (a full set leaves new
// sources unmarked, their knocks still logged).
//
// Grants are set elements with a kernel timeout: they close on time even if
// the daemon is gone, and survive a restart (Setup keeps them). Established
// connections stay up after their grant expires (first rule). Loopback is
// not exempt: a protected service is hidden from local clients too unless
// AlwaysAllow lists 127.0.0.0/8 and ::1/128.
//
// Library traps handled here (see docs/ and the research notes): expr.Log
// needs its Key bitmask; concatenated keys are padded to 4 bytes per field;
// the *Set passed to SetAddElements must have HasTimeout or timeouts are
// silently dropped; re-adding an element does not refresh its timeout (we
// add, delete and add again in one batch); an element list is one netlink
// attribute with a 16-bit length that the library silently wraps (we chunk
// into messages of at most MaxChunk elements); a transaction is one sendmsg,
// bounded by the socket send buffer (we raise it); and the library's Conn
// queues messages from every goroutine (we hold a mutex across queue and
// Flush).
package nftables
