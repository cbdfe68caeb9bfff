//go:build linux

package nftables

import (
	"slices"
	"time"

	nft "github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/sesame-gw/sesame/internal/firewall"
)

// Names of the objects in Sesame's table. See the package documentation for
// the ruleset they make up.
const (
	setGrants4   = "grants4"
	setGrants6   = "grants6"
	setProtected = "protected"
	setWatched   = "watched"
	setWatch4    = "watch4"
	setWatch6    = "watch6"
	setAllow4    = "allow4"
	setAllow6    = "allow6"
	setIfaces    = "ifaces"
	setBulk4     = "bulk4"
	setBulk6     = "bulk6"
	chainInput   = "input"
)

// Registers as nft(8) allocates them for these rules: NFT_REG_1 is the first
// 16-byte register, NFT_REG_2 the second; 9, 10 and 13 are the 4-byte
// registers NFT_REG32_01, _02 and _05. A concatenation is loaded into
// consecutive 4-byte registers.
const (
	reg1    = unix.NFT_REG_1
	reg2    = unix.NFT_REG_2
	reg32_1 = unix.NFT_REG32_01
	reg32_2 = unix.NFT_REG32_02
	reg32_5 = unix.NFT_REG32_05
)

// setDefs builds fresh descriptions of every set of the table. IDs are fixed
// and non-zero, so AddSet does not touch the library's global ID counter
// (unsynchronised across Conns); they only need to be unique in one batch.
//
// The timeout sets have HasTimeout set: google/nftables drops an element's
// Timeout unless the *Set passed to SetAddElements says so.
func setDefs(t *nft.Table) map[string]*nft.Set {
	svc := nft.MustConcatSetType(nft.TypeInetProto, nft.TypeInetService)
	return map[string]*nft.Set{
		setGrants4: {Table: t, ID: 1, Name: setGrants4, HasTimeout: true, Concatenation: true,
			KeyType: nft.MustConcatSetType(nft.TypeIPAddr, nft.TypeInetProto, nft.TypeInetService)},
		setGrants6: {Table: t, ID: 2, Name: setGrants6, HasTimeout: true, Concatenation: true,
			KeyType: nft.MustConcatSetType(nft.TypeIP6Addr, nft.TypeInetProto, nft.TypeInetService)},
		setProtected: {Table: t, ID: 3, Name: setProtected, Concatenation: true, KeyType: svc},
		setWatched:   {Table: t, ID: 4, Name: setWatched, Concatenation: true, KeyType: svc},
		setWatch4: {Table: t, ID: 5, Name: setWatch4, HasTimeout: true, Dynamic: true, KeyType: nft.TypeIPAddr,
			KeyByteOrder: binaryutil.BigEndian, Size: firewall.WatchSources},
		setWatch6: {Table: t, ID: 6, Name: setWatch6, HasTimeout: true, Dynamic: true, KeyType: nft.TypeIP6Addr,
			KeyByteOrder: binaryutil.BigEndian, Size: firewall.WatchSources},
		setAllow4: {Table: t, ID: 7, Name: setAllow4, Interval: true, KeyType: nft.TypeIPAddr},
		setAllow6: {Table: t, ID: 8, Name: setAllow6, Interval: true, KeyType: nft.TypeIP6Addr},
		setIfaces: {Table: t, ID: 9, Name: setIfaces, KeyType: nft.TypeIFName, KeyByteOrder: binaryutil.NativeEndian},
		setBulk4: {Table: t, ID: 10, Name: setBulk4, HasTimeout: true, Dynamic: true, KeyType: nft.TypeIPAddr,
			KeyByteOrder: binaryutil.BigEndian, Timeout: firewall.BulkSourceTimeout, Size: firewall.BulkSources},
		setBulk6: {Table: t, ID: 11, Name: setBulk6, HasTimeout: true, Dynamic: true, KeyType: nft.TypeIP6Addr,
			KeyByteOrder: binaryutil.BigEndian, Timeout: firewall.BulkSourceTimeout, Size: firewall.BulkSources},
	}
}

// setOrder is the order sets are created in (and listed by nft). The sets
// that survive a Setup come first, so that the listing after a second Setup
// is the same as after the first.
var setOrder = []string{setGrants4, setGrants6, setWatch4, setWatch6, setProtected, setWatched, setAllow4, setAllow6, setIfaces}

// setOrderFor is setOrder, with the sources of the batched group (bulk4,
// bulk6) after the live sets when the layout has a bulk group. The bulk
// sets are recreated empty by every Setup: they only order packets in
// flight.
func setOrderFor(bulk bool) []string {
	if !bulk {
		return setOrder
	}
	return slices.Concat(setOrder[:4], []string{setBulk4, setBulk6}, setOrder[4:])
}

// stateSets hold live state (grants, knock progress) and survive a Setup
// when their definition is unchanged.
var stateSets = map[string]bool{setGrants4: true, setGrants6: true, setWatch4: true, setWatch6: true}

// compatible reports whether the kernel's set have can stand in for want.
// The flags and the size count: a watch set made before the kernel marked
// sources itself (no dynamic flag, no size) cannot take the rule's updates
// and is replaced.
func compatible(have, want *nft.Set) bool {
	return have.KeyType.GetNFTMagic() == want.KeyType.GetNFTMagic() &&
		have.KeyType.Bytes == want.KeyType.Bytes &&
		have.HasTimeout == want.HasTimeout && have.Interval == want.Interval &&
		have.Dynamic == want.Dynamic && have.Size == want.Size &&
		!have.IsMap && !have.Anonymous && !have.Constant && have.Timeout == 0
}

func inputChain(t *nft.Table, prio int32) *nft.Chain {
	policy := nft.ChainPolicyAccept
	return &nft.Chain{
		Name:     chainInput,
		Table:    t,
		Type:     nft.ChainTypeFilter,
		Hooknum:  nft.ChainHookInput,
		Priority: nft.ChainPriorityRef(nft.ChainPriority(prio)),
		Policy:   &policy,
	}
}

// rules returns the expressions of the input chain's rules, in order. They
// mirror what nft 1.0 generates for the listing in the package documentation
// (compare with `nft --debug=netlink`).
//
// The first rule limits the chain to the layout's interfaces: with none
// listed, `iifname @ifaces return` where ifaces = {"lo"} (loopback is
// never filtered); with a list, `iifname != @ifaces return`.
//
// With a bulk group, the watched-port rule is split: up to rate packets per
// second go to group one at a time; the rest go to bulk in batches of
// firewall.BulkQueueThreshold, and their sources are remembered in
// bulk4/bulk6 (dynamic sets with a timeout, refreshed by every packet):
// the packets of a remembered source go to bulk before the rate is
// consulted, and so do its new connections to other ports while it is
// watched. A source's logged packets are thus in one group from its first
// overflow on, and a later knock cannot overtake an earlier one through
// the faster group. (The other way round, an earlier packet one at a time
// and a later one batched, is kept in order by the reader, which drains
// group first: capture.Merge.) When a bulk set is full, the update fails,
// the rule does not match, and a last rule sends the packet to bulk.
//
// With a watch timeout T (firewall.Layout.WatchTimeout), two rules right
// before the watched-port rules mark the source of every watched packet:
//
//	meta l4proto . th dport @watched update @watch4 { ip saddr timeout T } (and ip6)
//
// They have no verdict: when watch4 is full the update fails, the rule
// does not match, and the packet goes on to the watched-port rules, logged
// as ever, its source unmarked.
//
// With a datagram filter, two rules per filtered port come right before the
// mark rules and the watched-port rules: datagrams whose length or first byte fits none of the
// handlers' shapes are dropped there, never logged.
func rules(sets map[string]*nft.Set, group, bulk uint16, rate uint32, watchTTL time.Duration, onlyIfaces bool, dg dgramFilter) [][]expr.Any {
	lookup := func(reg uint32, name string) *expr.Lookup {
		return &expr.Lookup{SourceRegister: reg, SetName: name, SetID: sets[name].ID}
	}
	accept := &expr.Verdict{Kind: expr.VerdictAccept}
	drop := &expr.Verdict{Kind: expr.VerdictDrop}
	// log group G queue-threshold 1: without the Key bitmask the expression
	// is an empty "log" (kernel syslog), and without the threshold the
	// kernel batches NFLOG messages for up to a second.
	nflogTo := func(g uint16, qthresh uint16) *expr.Log {
		return &expr.Log{
			Key:        1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_QTHRESHOLD,
			Group:      g,
			QThreshold: qthresh,
		}
	}
	nflog := func() *expr.Log { return nflogTo(group, 1) }
	ctState := func(bits uint32) []expr.Any {
		return []expr.Any{
			&expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: make([]byte, 4)},
		}
	}
	nfproto := func(p byte) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{p}},
		}
	}
	saddr4 := &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
	saddr6 := &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16}
	l4proto := func(reg uint32) *expr.Meta { return &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg} }
	// th dport: bytes 2-3 of the transport header. The kernel does not load
	// it for non-first fragments or without a transport header, and the set
	// keys carry the protocol, so no separate l4proto test is needed (nft
	// emits none either).
	dport := func(reg uint32) *expr.Payload {
		return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
	}
	cat := func(parts ...[]expr.Any) []expr.Any {
		var out []expr.Any
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	one := func(e ...expr.Any) []expr.Any { return e }

	ifaceLookup := lookup(reg1, setIfaces)
	ifaceLookup.Invert = onlyIfaces
	watchedPort := func() []expr.Any { return one(l4proto(reg1), dport(reg32_1), lookup(reg1, setWatched)) }
	// meta l4proto . th dport @watched log group G queue-threshold 1 drop
	watched := [][]expr.Any{cat(watchedPort(), one(nflog(), drop))}
	// ct state new ip saddr @watch4 log group G queue-threshold 1 (and ip6)
	scans := [][]expr.Any{
		cat(ctState(expr.CtStateBitNEW), nfproto(unix.NFPROTO_IPV4), one(saddr4, lookup(reg1, setWatch4), nflog())),
		cat(ctState(expr.CtStateBitNEW), nfproto(unix.NFPROTO_IPV6), one(saddr6, lookup(reg1, setWatch6), nflog())),
	}
	if bulk != 0 {
		batched := func() *expr.Log { return nflogTo(bulk, firewall.BulkQueueThreshold) }
		family := []struct {
			proto byte
			saddr *expr.Payload
			set   string
		}{{unix.NFPROTO_IPV4, saddr4, setBulk4}, {unix.NFPROTO_IPV6, saddr6, setBulk6}}
		update := func(set string) *expr.Dynset {
			return &expr.Dynset{SrcRegKey: reg1, SetName: set, SetID: sets[set].ID, Operation: unix.NFT_DYNSET_OP_UPDATE}
		}
		watched = nil
		// ... ip saddr @bulk4 update @bulk4 { ip saddr } log group B queue-threshold 64 drop (and ip6)
		for _, f := range family {
			watched = append(watched, cat(watchedPort(), nfproto(f.proto),
				one(f.saddr, lookup(reg1, f.set), f.saddr, update(f.set), batched(), drop)))
		}
		// ... limit rate R/second burst R packets log group G queue-threshold 1 drop
		watched = append(watched, cat(watchedPort(),
			one(&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(rate), Unit: expr.LimitTimeSecond, Burst: rate}, nflog(), drop)))
		// ... update @bulk4 { ip saddr } log group B queue-threshold 64 drop (and ip6)
		for _, f := range family {
			watched = append(watched, cat(watchedPort(), nfproto(f.proto), one(f.saddr, update(f.set), batched(), drop)))
		}
		// ... log group B queue-threshold 64 drop (the bulk set is full)
		watched = append(watched, cat(watchedPort(), one(batched(), drop)))
		// ct state new ip saddr @watch4 ip saddr @bulk4 log group B queue-threshold 64
		// ct state new ip saddr @watch4 ip saddr != @bulk4 log group G queue-threshold 1 (and ip6)
		scans = nil
		for _, f := range family {
			watch := map[byte]string{unix.NFPROTO_IPV4: setWatch4, unix.NFPROTO_IPV6: setWatch6}[f.proto]
			for _, inBulk := range []bool{true, false} {
				in := lookup(reg1, f.set)
				in.Invert = !inBulk
				var log *expr.Log
				if inBulk {
					log = batched()
				} else {
					log = nflog()
				}
				scans = append(scans, cat(ctState(expr.CtStateBitNEW), nfproto(f.proto),
					one(f.saddr, lookup(reg1, watch), f.saddr, in, log)))
			}
		}
	}
	if watchTTL > 0 {
		// ... update @watch4 { ip saddr timeout T } (and ip6)
		var marks [][]expr.Any
		for _, f := range []struct {
			proto byte
			saddr *expr.Payload
			set   string
		}{{unix.NFPROTO_IPV4, saddr4, setWatch4}, {unix.NFPROTO_IPV6, saddr6, setWatch6}} {
			marks = append(marks, cat(watchedPort(), nfproto(f.proto), one(f.saddr,
				&expr.Dynset{SrcRegKey: reg1, SetName: f.set, SetID: sets[f.set].ID,
					Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: watchTTL})))
		}
		watched = append(marks, watched...)
	}
	watched = append(datagramRules(dg, group, bulk, rate), watched...)
	return append([][]expr.Any{
		// iifname @ifaces return (no interfaces configured: ifaces = {"lo"})
		// or iifname != @ifaces return (only the configured interfaces)
		one(&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg1}, ifaceLookup, &expr.Verdict{Kind: expr.VerdictReturn}),
		// ct state established,related accept
		cat(ctState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), one(accept)),
		// ip saddr @allow4 accept; ip6 saddr @allow6 accept
		cat(nfproto(unix.NFPROTO_IPV4), one(saddr4, lookup(reg1, setAllow4), accept)),
		cat(nfproto(unix.NFPROTO_IPV6), one(saddr6, lookup(reg1, setAllow6), accept)),
	}, slices.Concat(watched, scans, [][]expr.Any{
		// ip saddr . meta l4proto . th dport @grants4 accept (and ip6)
		cat(nfproto(unix.NFPROTO_IPV4), one(saddr4, l4proto(reg32_1), dport(reg32_2), lookup(reg1, setGrants4), accept)),
		cat(nfproto(unix.NFPROTO_IPV6), one(saddr6, l4proto(reg2), dport(reg32_5), lookup(reg1, setGrants6), accept)),
		// meta l4proto . th dport @protected drop
		one(l4proto(reg1), dport(reg32_1), lookup(reg1, setProtected), drop),
	})...)
}

// datagramRules are the pre-filter rules of dg, for each port P:
//
//	meta l4proto udp udp dport P udp length != MIN+8-MAX+8 drop
//	meta l4proto udp udp dport P @th,64,8 != B1 @th,64,8 != B2 ... drop
//
// The second rule is left out when any first byte is allowed. A datagram
// too short to have a first byte fails the length rule first (MIN >= 1).
//
// With a bulk group, a third rule gives the datagrams that passed their
// own share of the one-at-a-time group, so that a SYN flood on the knock
// ports, which takes the watched rule's share, does not push a lone SPA
// packet into the batched group's backlog:
//
//	meta l4proto udp udp dport P limit rate R/second burst R packets log group G queue-threshold 1 drop
//
// Beyond R per second, datagrams fall through to the watched rules.
func datagramRules(dg dgramFilter, group, bulk uint16, rate uint32) [][]expr.Any {
	var out [][]expr.Any
	be16 := binaryutil.BigEndian.PutUint16
	for _, p := range dg.ports {
		udpPort := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.IPPROTO_UDP}},
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(p)},
		}
		length := append(slices.Clone(udpPort),
			&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 4, Len: 2},
			&expr.Range{Op: expr.CmpOpNeq, Register: reg1,
				FromData: be16(uint16(dg.minLen + 8)), ToData: be16(uint16(dg.maxLen + 8))},
			&expr.Verdict{Kind: expr.VerdictDrop})
		out = append(out, length)
		if len(dg.first) > 0 {
			first := append(slices.Clone(udpPort),
				&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 8, Len: 1})
			for _, b := range dg.first {
				first = append(first, &expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: []byte{b}})
			}
			out = append(out, append(first, &expr.Verdict{Kind: expr.VerdictDrop}))
		}
		if bulk != 0 {
			out = append(out, append(slices.Clone(udpPort),
				&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(rate), Unit: expr.LimitTimeSecond, Burst: rate},
				&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_QTHRESHOLD, Group: group, QThreshold: 1},
				&expr.Verdict{Kind: expr.VerdictDrop}))
		}
	}
	return out
}
