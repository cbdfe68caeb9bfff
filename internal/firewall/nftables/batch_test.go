//go:build linux

package nftables

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/sesame-gw/sesame/internal/firewall"
	"github.com/sesame-gw/sesame/internal/service"
)

// Unit tests of the messages sent, with google/nftables' test dial in place
// of the kernel. The kernel's answers are checked by the netns tests.

var (
	ssh = service.Service{Proto: service.TCP, Port: 22}
	dns = service.Service{Proto: service.UDP, Port: 53}
)

// fakeKernel records every batch sent and answers nothing (no acks, empty
// dumps: a kernel without our table), unless reply is set.
type fakeKernel struct {
	mu      sync.Mutex
	sends   [][]netlink.Message
	replyTo func(req []netlink.Message) []netlink.Message
}

func (k *fakeKernel) dial(req []netlink.Message) ([]netlink.Message, error) {
	if req == nil {
		return nil, nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.sends = append(k.sends, req)
	if k.replyTo != nil {
		return k.replyTo(req), nil
	}
	return nil, nil
}

// batches returns the sends that are nftables batches, without the
// begin/end markers.
func (k *fakeKernel) batches(t *testing.T) [][]netlink.Message {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	var out [][]netlink.Message
	for _, s := range k.sends {
		if s[0].Header.Type != unix.NFNL_MSG_BATCH_BEGIN {
			continue
		}
		if last := s[len(s)-1]; last.Header.Type != unix.NFNL_MSG_BATCH_END {
			t.Fatalf("batch does not end with NFNL_MSG_BATCH_END: %v", last.Header)
		}
		out = append(out, s[1:len(s)-1])
	}
	return out
}

func newTestFirewall(t *testing.T, k *fakeKernel, opts ...Option) *Firewall {
	t.Helper()
	f, err := New(append([]Option{WithTestDial(k.dial)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// msgType is the NFT_MSG_* of an nftables message.
func msgType(m netlink.Message) int { return int(m.Header.Type & 0xff) }

// attrs decodes the attributes after the nfgenmsg header.
func attrs(t *testing.T, b []byte) map[uint16][]byte {
	t.Helper()
	as, err := netlink.UnmarshalAttributes(b)
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[uint16][]byte)
	for _, a := range as {
		out[a.Type&^unix.NLA_F_NESTED] = a.Data
	}
	return out
}

// elem is one decoded set element of a NEWSETELEM/DELSETELEM message.
type elem struct {
	key        []byte
	timeout    time.Duration
	hasTimeout bool
	end        bool
}

// elemMsg decodes a set element message: set name, elements and the length
// of the element list attribute.
func elemMsg(t *testing.T, m netlink.Message) (set string, elems []elem, listLen int) {
	t.Helper()
	top, err := netlink.UnmarshalAttributes(m.Data[4:])
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range top {
		switch a.Type &^ unix.NLA_F_NESTED {
		case unix.NFTA_SET_ELEM_LIST_SET:
			set = string(a.Data[:len(a.Data)-1])
		case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
			listLen = int(a.Length)
			list, err := netlink.UnmarshalAttributes(a.Data)
			if err != nil {
				t.Fatal(err)
			}
			for _, le := range list {
				var e elem
				ea := attrs(t, le.Data)
				e.key = attrs(t, ea[unix.NFTA_SET_ELEM_KEY])[unix.NFTA_DATA_VALUE]
				if v, ok := ea[unix.NFTA_SET_ELEM_TIMEOUT]; ok {
					e.hasTimeout = true
					e.timeout = time.Duration(binary.BigEndian.Uint64(v)) * time.Millisecond
				}
				if v, ok := ea[unix.NFTA_SET_ELEM_FLAGS]; ok {
					e.end = binary.BigEndian.Uint32(v)&unix.NFT_SET_ELEM_INTERVAL_END != 0
				}
				elems = append(elems, e)
			}
		}
	}
	return set, elems, listLen
}

func TestGrantBatchShape(t *testing.T) {
	k := &fakeKernel{}
	f := newTestFirewall(t, k)
	a4 := netip.MustParseAddr("192.0.2.7")
	a6 := netip.MustParseAddr("2001:db8::7")
	err := f.Grant(context.Background(), []firewall.Grant{
		{Addr: a4, Service: ssh, TTL: 1500*time.Millisecond + time.Microsecond},
		{Addr: a6, Service: dns, TTL: 30 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	bs := k.batches(t)
	if len(bs) != 1 {
		t.Fatalf("%d batches, want 1 transaction", len(bs))
	}
	wantOps := []struct {
		typ int
		set string
	}{
		{unix.NFT_MSG_NEWSETELEM, setGrants4}, {unix.NFT_MSG_DELSETELEM, setGrants4}, {unix.NFT_MSG_NEWSETELEM, setGrants4},
		{unix.NFT_MSG_NEWSETELEM, setGrants6}, {unix.NFT_MSG_DELSETELEM, setGrants6}, {unix.NFT_MSG_NEWSETELEM, setGrants6},
	}
	if len(bs[0]) != len(wantOps) {
		t.Fatalf("batch has %d messages, want %d (add+delete+add per family)", len(bs[0]), len(wantOps))
	}
	wantKey := map[string][]byte{
		setGrants4: {192, 0, 2, 7, 6, 0, 0, 0, 0, 22, 0, 0},
		setGrants6: {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 17, 0, 0, 0, 0, 53, 0, 0},
	}
	wantTimeout := map[string]time.Duration{setGrants4: 1501 * time.Millisecond, setGrants6: 30 * time.Second}
	for i, m := range bs[0] {
		set, elems, _ := elemMsg(t, m)
		if msgType(m) != wantOps[i].typ || set != wantOps[i].set || len(elems) != 1 {
			t.Fatalf("message %d: type %d set %q %d elements, want type %d set %q 1 element",
				i, msgType(m), set, len(elems), wantOps[i].typ, wantOps[i].set)
		}
		if string(elems[0].key) != string(wantKey[set]) {
			t.Errorf("message %d: key % x, want % x (4-byte padded fields)", i, elems[0].key, wantKey[set])
		}
		isAdd := msgType(m) == unix.NFT_MSG_NEWSETELEM
		if isAdd && (!elems[0].hasTimeout || elems[0].timeout != wantTimeout[set]) {
			t.Errorf("message %d: add without the timeout %v (got %v, sent %v)", i, wantTimeout[set], elems[0].timeout, elems[0].hasTimeout)
		}
		if !isAdd && elems[0].hasTimeout {
			t.Errorf("message %d: delete carries a timeout", i)
		}
	}
}

func TestGrantChunkedInOneTransaction(t *testing.T) {
	k := &fakeKernel{}
	f := newTestFirewall(t, k)
	const n = 3000
	gs := make([]firewall.Grant, 0, n+MaxChunk)
	for i := range n {
		gs = append(gs, firewall.Grant{Addr: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Service: ssh, TTL: time.Minute})
	}
	if err := f.Grant(context.Background(), gs); err != nil {
		t.Fatal(err)
	}
	bs := k.batches(t)
	if len(bs) != 1 {
		t.Fatalf("%d batches, want 1", len(bs))
	}
	chunks := (n + DefaultChunk - 1) / DefaultChunk
	if len(bs[0]) != 3*chunks {
		t.Fatalf("%d messages, want %d (3 per chunk of %d)", len(bs[0]), 3*chunks, DefaultChunk)
	}
	added := make(map[string]bool)
	for _, m := range bs[0] {
		_, elems, listLen := elemMsg(t, m)
		if len(elems) > DefaultChunk {
			t.Fatalf("message with %d elements > chunk %d", len(elems), DefaultChunk)
		}
		if listLen > 0xffff {
			t.Fatalf("element list attribute of %d bytes overflows 16 bits", listLen)
		}
		for _, e := range elems {
			if msgType(m) == unix.NFT_MSG_NEWSETELEM {
				added[string(e.key)] = true
			}
		}
	}
	if len(added) != n {
		t.Fatalf("%d distinct keys added, want %d", len(added), n)
	}
}

// The worst case (MaxChunk IPv6 adds with a timeout) must fit the 16-bit
// attribute length that the library does not check.
func TestMaxChunkFitsAttribute(t *testing.T) {
	k := &fakeKernel{}
	f := newTestFirewall(t, k, WithChunkSize(MaxChunk))
	gs := make([]firewall.Grant, MaxChunk)
	for i := range gs {
		a := netip.MustParseAddr("2001:db8::").As16()
		binary.BigEndian.PutUint16(a[14:], uint16(i))
		gs[i] = firewall.Grant{Addr: netip.AddrFrom16(a), Service: ssh, TTL: MaxTTL}
	}
	if err := f.Grant(context.Background(), gs); err != nil {
		t.Fatal(err)
	}
	for _, m := range k.batches(t)[0] {
		if _, elems, listLen := elemMsg(t, m); len(elems) != MaxChunk || listLen > 0xffff {
			t.Fatalf("%d elements in a %d-byte list", len(elems), listLen)
		}
	}
	if _, err := New(WithTestDial(k.dial), WithChunkSize(MaxChunk+1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("chunk > MaxChunk accepted: %v", err)
	}
}

func TestGrantDedupAndValidation(t *testing.T) {
	k := &fakeKernel{}
	f := newTestFirewall(t, k)
	ctx := context.Background()
	a := netip.MustParseAddr("192.0.2.1")
	mapped := netip.AddrFrom16(a.As16())
	if err := f.Grant(ctx, []firewall.Grant{
		{Addr: a, Service: ssh, TTL: time.Second},
		{Addr: mapped, Service: ssh, TTL: 7 * time.Second}, // same key: last wins
	}); err != nil {
		t.Fatal(err)
	}
	bs := k.batches(t)
	if len(bs) != 1 || len(bs[0]) != 3 {
		t.Fatalf("want one batch of 3 messages for IPv4 only, got %d batches", len(bs))
	}
	if _, elems, _ := elemMsg(t, bs[0][0]); len(elems) != 1 || elems[0].timeout != 7*time.Second {
		t.Fatalf("deduplicated add = %+v, want one element with the last TTL 7s", elems)
	}
	for _, g := range []firewall.Grant{
		{Addr: a, Service: ssh, TTL: 0},
		{Addr: a, Service: ssh, TTL: -time.Second},
		{Addr: a, Service: ssh, TTL: MaxTTL + 1},
		{Service: ssh, TTL: time.Second},
		{Addr: a, Service: service.Service{Proto: 1, Port: 1}, TTL: time.Second},
	} {
		if err := f.Grant(ctx, []firewall.Grant{{Addr: a, Service: ssh, TTL: time.Second}, g}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Grant(%+v) = %v, want ErrInvalid", g, err)
		}
	}
	if err := f.Revoke(ctx, []firewall.Grant{{Service: ssh}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Revoke invalid = %v, want ErrInvalid", err)
	}
	if n := len(k.batches(t)); n != 1 {
		t.Fatalf("rejected calls sent %d more batches", n-1)
	}
	if err := f.Grant(ctx, nil); err != nil || len(k.batches(t)) != 1 {
		t.Fatalf("empty Grant: %v, or sent a batch", err)
	}
}

func TestRevokeBatch(t *testing.T) {
	k := &fakeKernel{}
	f := newTestFirewall(t, k)
	ctx := context.Background()
	a6 := netip.MustParseAddr("2001:db8::1")
	if err := f.Revoke(ctx, []firewall.Grant{{Addr: a6, Service: ssh}}); err != nil {
		t.Fatal(err)
	}
	bs := k.batches(t)
	if len(bs) != 1 {
		t.Fatalf("%d batches, want 1", len(bs))
	}
	type op struct {
		typ     int
		set     string
		keyLen  int
		timeout bool
	}
	want := [][]op{
		// Revoke: add (so the delete cannot fail with ENOENT) + delete.
		{{unix.NFT_MSG_NEWSETELEM, setGrants6, 24, true}, {unix.NFT_MSG_DELSETELEM, setGrants6, 24, false}},
	}
	for i, b := range bs {
		if len(b) != len(want[i]) {
			t.Fatalf("batch %d: %d messages, want %d", i, len(b), len(want[i]))
		}
		for j, m := range b {
			set, elems, _ := elemMsg(t, m)
			w := want[i][j]
			if msgType(m) != w.typ || set != w.set || len(elems) != 1 || len(elems[0].key) != w.keyLen || elems[0].hasTimeout != w.timeout {
				t.Errorf("batch %d message %d: type %d set %s elems %+v, want %+v", i, j, msgType(m), set, elems, w)
			}
		}
	}
}

// setupBatch runs Setup against a kernel without the table and returns the
// transaction.
func setupBatch(t *testing.T, l firewall.Layout) []netlink.Message {
	t.Helper()
	k := &fakeKernel{}
	f := newTestFirewall(t, k)
	if err := f.Setup(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	bs := k.batches(t)
	if len(bs) != 1 {
		t.Fatalf("Setup sent %d batches, want 1", len(bs))
	}
	return bs[0]
}

func TestSetupBatchShape(t *testing.T) {
	b := setupBatch(t, firewall.Layout{
		Protected:   []service.Service{ssh, dns, ssh},
		Watched:     []service.Service{{Proto: service.UDP, Port: 62201}},
		LogGroup:    7,
		AlwaysAllow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("10.1.0.0/16")},
	})
	counts := make(map[int]int)
	setFlags := make(map[string]uint32)
	elems := make(map[string][]elem)
	var logs []map[uint16][]byte
	for _, m := range b {
		counts[msgType(m)]++
		switch msgType(m) {
		case unix.NFT_MSG_NEWSET:
			a := attrs(t, m.Data[4:])
			name := string(a[unix.NFTA_SET_NAME][:len(a[unix.NFTA_SET_NAME])-1])
			setFlags[name] = binary.BigEndian.Uint32(a[unix.NFTA_SET_FLAGS])
		case unix.NFT_MSG_NEWSETELEM:
			set, es, _ := elemMsg(t, m)
			elems[set] = append(elems[set], es...)
		case unix.NFT_MSG_NEWRULE:
			list, err := netlink.UnmarshalAttributes(attrs(t, m.Data[4:])[unix.NFTA_RULE_EXPRESSIONS])
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range list {
				ea := attrs(t, e.Data)
				if string(ea[unix.NFTA_EXPR_NAME]) == "log\x00" {
					logs = append(logs, attrs(t, ea[unix.NFTA_EXPR_DATA]))
				}
			}
		}
	}
	if counts[unix.NFT_MSG_NEWTABLE] != 1 || counts[unix.NFT_MSG_NEWSET] != 9 || counts[unix.NFT_MSG_NEWCHAIN] != 1 || counts[unix.NFT_MSG_NEWRULE] != 10 {
		t.Errorf("message counts %v, want 1 table, 9 sets, 1 chain, 10 rules", counts)
	}
	if counts[unix.NFT_MSG_DELTABLE]+counts[unix.NFT_MSG_DELSET]+counts[unix.NFT_MSG_DELSETELEM] != 0 {
		t.Errorf("fresh Setup deletes something: %v", counts)
	}
	for _, name := range []string{setGrants4, setGrants6, setWatch4, setWatch6} {
		if setFlags[name]&unix.NFT_SET_TIMEOUT == 0 {
			t.Errorf("set %s lacks the timeout flag (flags %#x)", name, setFlags[name])
		}
	}
	for _, name := range []string{setAllow4, setAllow6} {
		if setFlags[name]&unix.NFT_SET_INTERVAL == 0 {
			t.Errorf("set %s lacks the interval flag", name)
		}
	}
	if len(elems[setProtected]) != 2 || string(elems[setProtected][0].key) != string([]byte{6, 0, 0, 0, 0, 22, 0, 0}) {
		t.Errorf("protected elements %+v, want 2 (deduplicated), 8-byte padded keys", elems[setProtected])
	}
	// 10.1/16 is inside 10/8: only 10/8 is sent, as 0.0.0.0 (end), 10.0.0.0, 11.0.0.0 (end).
	if a := elems[setAllow4]; len(a) != 3 || !a[0].end || a[1].end || !a[2].end || a[2].key[0] != 11 {
		t.Errorf("allow4 elements %+v", a)
	}
	if len(logs) != 3 {
		t.Fatalf("%d log expressions, want 3", len(logs))
	}
	for _, l := range logs {
		g, q := l[unix.NFTA_LOG_GROUP], l[unix.NFTA_LOG_QTHRESHOLD]
		if len(g) != 2 || binary.BigEndian.Uint16(g) != 7 || len(q) != 2 || binary.BigEndian.Uint16(q) != 1 {
			t.Errorf("log expression %v: want NFLOG group 7 with queue threshold 1", l)
		}
	}
}

func TestSetupRejectsInvalidLayout(t *testing.T) {
	k := &fakeKernel{}
	f := newTestFirewall(t, k)
	ctx := context.Background()
	for _, l := range []firewall.Layout{
		{Protected: []service.Service{{Proto: service.TCP}}},
		{Watched: []service.Service{{Proto: 47, Port: 1}}},
		{AlwaysAllow: []netip.Prefix{{}}},
	} {
		if err := f.Setup(ctx, l); !errors.Is(err, ErrInvalid) {
			t.Errorf("Setup(%+v) = %v, want ErrInvalid", l, err)
		}
	}
	if len(k.sends) != 0 {
		t.Fatalf("invalid layouts reached netlink: %d sends", len(k.sends))
	}
}

func TestListDecodesElements(t *testing.T) {
	k := &fakeKernel{}
	k.replyTo = func(req []netlink.Message) []netlink.Message {
		if len(req) != 1 || msgType(req[0]) != unix.NFT_MSG_GETSETELEM {
			return nil
		}
		set := string(attrs(t, req[0].Data[4:])[unix.NFTA_SET_NAME])
		var list []netlink.Attribute
		add := func(key []byte, expires time.Duration) {
			e := []netlink.Attribute{
				{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_KEY, Data: mustAttrs(t, netlink.Attribute{Type: unix.NFTA_DATA_VALUE, Data: key})},
				{Type: unix.NFTA_SET_ELEM_TIMEOUT, Data: binary.BigEndian.AppendUint64(nil, 60000)},
				{Type: unix.NFTA_SET_ELEM_EXPIRATION, Data: binary.BigEndian.AppendUint64(nil, uint64(expires.Milliseconds()))},
			}
			list = append(list, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: mustAttrs(t, e...)})
		}
		switch set {
		case "grants4\x00":
			add(grantKey(netip.MustParseAddr("192.0.2.9"), dns), 1234*time.Millisecond)
			add(grantKey(netip.MustParseAddr("192.0.2.1"), ssh), 59*time.Second)
			add([]byte{1, 2, 3}, time.Second) // not a grant key: skipped
		case "grants6\x00":
			add(grantKey(netip.MustParseAddr("2001:db8::1"), ssh), 5*time.Second)
		}
		data := mustAttrs(t,
			netlink.Attribute{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte("sesame\x00")},
			netlink.Attribute{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(set)},
			netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_LIST_ELEMENTS, Data: mustAttrs(t, list...)},
		)
		return []netlink.Message{{
			Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWSETELEM), Sequence: req[0].Header.Sequence, PID: req[0].Header.PID},
			Data:   append([]byte{unix.NFPROTO_INET, 0, 0, 0}, data...),
		}}
	}
	f := newTestFirewall(t, k)
	got, err := f.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []firewall.Grant{
		{Addr: netip.MustParseAddr("192.0.2.1"), Service: ssh, TTL: 59 * time.Second},
		{Addr: netip.MustParseAddr("192.0.2.9"), Service: dns, TTL: 1234 * time.Millisecond},
		{Addr: netip.MustParseAddr("2001:db8::1"), Service: ssh, TTL: 5 * time.Second},
	}
	if len(got) != len(want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("List[%d] = %v, want %v", i, got[i], want[i])
		}
	}
}

func mustAttrs(t *testing.T, as ...netlink.Attribute) []byte {
	t.Helper()
	b, err := netlink.MarshalAttributes(as)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Concurrent callers must not mix their messages into one batch: the
// library's Conn queues across goroutines.
func TestConcurrentCallsStaySeparate(t *testing.T) {
	k := &fakeKernel{}
	f := newTestFirewall(t, k)
	ctx := context.Background()
	var wg sync.WaitGroup
	const workers, each = 8, 25
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				a := netip.AddrFrom4([4]byte{10, 9, byte(w), byte(i)})
				if err := f.Grant(ctx, []firewall.Grant{{Addr: a, Service: ssh, TTL: time.Minute}}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	bs := k.batches(t)
	if len(bs) != workers*each {
		t.Fatalf("%d batches, want %d", len(bs), workers*each)
	}
	for i, b := range bs {
		if len(b) != 3 {
			t.Fatalf("batch %d has %d messages, want 3 (one grant's add+delete+add)", i, len(b))
		}
		_, e0, _ := elemMsg(t, b[0])
		_, e2, _ := elemMsg(t, b[2])
		if string(e0[0].key) != string(e2[0].key) {
			t.Fatalf("batch %d mixes two grants", i)
		}
	}
}

func TestClosedAndCanceled(t *testing.T) {
	k := &fakeKernel{}
	f := newTestFirewall(t, k)
	g := []firewall.Grant{{Addr: netip.MustParseAddr("192.0.2.1"), Service: ssh, TTL: time.Second}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Grant(ctx, g); !errors.Is(err, context.Canceled) {
		t.Errorf("Grant with canceled ctx = %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := f.Grant(context.Background(), g); !errors.Is(err, ErrClosed) {
		t.Errorf("Grant after Close = %v, want ErrClosed", err)
	}
	if _, err := f.List(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("List after Close = %v, want ErrClosed", err)
	}
	if len(k.sends) != 0 {
		t.Errorf("%d sends, want none", len(k.sends))
	}
}
