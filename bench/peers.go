package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sesame-gw/sesame/internal/client"
	"github.com/sesame-gw/sesame/internal/fwknop"
	"github.com/sesame-gw/sesame/internal/netns"
	"github.com/sesame-gw/sesame/internal/policy"
	"github.com/sesame-gw/sesame/internal/service"
	"github.com/sesame-gw/sesame/internal/spa"
	"github.com/sesame-gw/sesame/internal/spakey"
)

// The daemons under test. Each runs alone on a fresh two-namespace bench
// (a rig), guarding 2222/tcp, with the same knock sequence (7000, 8000,
// 9000/tcp), the same SPA port (62201/udp) and the same client.

const (
	svcPort  = 2222
	spaPort  = 62201
	grantTTL = 30 * time.Second
)

var knockSeq = []string{"7000/tcp", "8000/tcp", "9000/tcp"}

// peer is one daemon configuration.
type peer interface {
	// name is the daemon as the tables show it.
	name() string
	// start starts the daemon in the rig's gateway namespace and waits
	// until it is ready.
	start(ctx context.Context, e *env, r *rig) error
	// pid is the daemon's process ID (for CPU and memory).
	pid() int
	// reset revokes every grant (between tries).
	reset(ctx context.Context, r *rig) error
	// methods are the ways a client opens the port on this daemon.
	methods() []method
	// knocks reports whether knocking state is kept per source (the memory
	// scenario).
	knocks() bool
	// output is the daemon's captured stdout and stderr (the last MiB).
	output() []byte
}

// method is one way to open the port: the subject of a latency series.
type method struct {
	subject string
	// pace is the pause between tries (the native and fwknop handlers
	// allow a source 20 datagrams per second).
	pace time.Duration
	// request builds the agent request for one try (a fresh packet).
	request func(r *rig) (agentReq, error)
}

func knockMethod(subject string) method {
	return method{subject: subject, pace: 20 * time.Millisecond, request: func(r *rig) (agentReq, error) {
		return agentReq{Op: "try", Knock: knockSeq, Dst: r.b.GW4, Wait: svcPort}, nil
	}}
}

// fwknopKeys is one access.conf key pair.
type fwknopKeys struct {
	keys fwknop.Keys
}

func newFwknopKeys() (fwknopKeys, error) {
	k, err := fwknop.GenerateKeys(rand.Reader, fwknop.SHA256)
	return fwknopKeys{k}, err
}

// stanza is the access.conf stanza for the keys (SOURCE ANY).
func (k fwknopKeys) stanza(extra string) string {
	return fmt.Sprintf("SOURCE ANY\nKEY_BASE64 %s\nHMAC_KEY_BASE64 %s\nHMAC_DIGEST_TYPE SHA256\nFW_ACCESS_TIMEOUT %d\n%s\n",
		fwknop.EncodeKeyBase64(k.keys.Key), fwknop.EncodeKeyBase64(k.keys.HMACKey), int(grantTTL.Seconds()), extra)
}

// packet is a fresh fwknop access request for allow,tcp/2222.
func (k fwknopKeys) packet(allow netip.Addr) ([]byte, error) {
	w, err := fwknop.Encode(fwknop.Message{User: "bench", Timestamp: time.Now().Unix(), Type: fwknop.AccessMsg,
		Access: fmt.Sprintf("%s,tcp/%d", allow, svcPort)}, k.keys, fwknop.EncodeOptions{})
	return []byte(w), err
}

func fwknopMethod(subject string, k fwknopKeys) method {
	return method{subject: subject, pace: 55 * time.Millisecond, request: func(r *rig) (agentReq, error) {
		p, err := k.packet(r.b.Client4)
		if err != nil {
			return agentReq{}, err
		}
		return agentReq{Op: "try", Datagram: hex.EncodeToString(p), UDPPort: spaPort, Dst: r.b.GW4, Wait: svcPort}, nil
	}}
}

// runIn runs argv in namespace ns, bounded, and returns its output.
func runIn(ctx context.Context, b *netns.Bench, ns string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := b.Command(ctx, ns, argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func procOutput(p *netns.Proc) []byte {
	if p == nil {
		return nil
	}
	return p.Output()
}

func waitReady(ctx context.Context, p *netns.Proc, line string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := p.WaitOutput(ctx, line); err != nil {
		return fmt.Errorf("%w\n%s", err, p.Output())
	}
	return nil
}

// ---------------------------------------------------------------------------
// Sesame: one daemon with a knock door, native SPA and fwknop access.conf.

type sesamePeer struct {
	proc   *netns.Proc
	id     spa.Identity
	gwPub  spakey.PublicKey
	fwk    fwknopKeys
	binary string
}

func (s *sesamePeer) name() string   { return "sesame" }
func (s *sesamePeer) pid() int       { return s.proc.PID() }
func (s *sesamePeer) knocks() bool   { return true }
func (s *sesamePeer) output() []byte { return procOutput(s.proc) }

func (s *sesamePeer) start(ctx context.Context, e *env, r *rig) error {
	s.binary = e.sesameBin
	dir := filepath.Join(r.dir, "sesame")
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o700); err != nil {
		return err
	}
	gw, err := spakey.Generate(spakey.Gateway)
	if err != nil {
		return err
	}
	id, err := spakey.Generate(spakey.Identity)
	if err != nil {
		return err
	}
	s.id, s.gwPub = spa.KeyIdentity(id.Identity()), gw.Public()
	gwPath := filepath.Join(dir, "gateway.key")
	if err := spakey.WriteFile(gwPath, gw); err != nil {
		return err
	}
	if s.fwk, err = newFwknopKeys(); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`[gateway]
state_dir = %q

[[door]]
name = "ssh"
sequence = ["7000/tcp", "8000/tcp", "9000/tcp"]
seq_timeout = "5s"
open = ["%d/tcp"]
duration = "%s"

[spa]
port = %d
key = %q

[[client]]
name = "bench"
public_key = %q
allow = ["%d/tcp"]
max_duration = "1m"
`, filepath.Join(dir, "state"), svcPort, grantTTL, spaPort, gwPath, id.Public().String(), svcPort)
	files := map[string]string{
		"sesame.toml": cfg,
		"access.conf": s.fwk.stanza(fmt.Sprintf("OPEN_PORTS tcp/%d", svcPort)),
		"fwknopd.conf": fmt.Sprintf("PCAP_FILTER udp port %d;\nENABLE_SPA_PACKET_AGING Y;\nMAX_SPA_PACKET_AGE 120;\nENABLE_DIGEST_PERSISTENCE Y;\nFWKNOP_RUN_DIR %s;\n",
			spaPort, filepath.Join(dir, "run")),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			return err
		}
	}
	p, err := r.b.Start(r.b.GW, e.sesameBin, "serve", "-c", filepath.Join(dir, "sesame.toml"),
		"--fwknop-access", filepath.Join(dir, "access.conf"), "--fwknop-conf", filepath.Join(dir, "fwknopd.conf"))
	if err != nil {
		return err
	}
	s.proc = p
	return waitReady(ctx, p, "gateway ready")
}

func (s *sesamePeer) reset(ctx context.Context, r *rig) error {
	_, err := runIn(ctx, r.b, r.b.GW, "nft", "flush", "set", "inet", "sesame", "grants4")
	return err
}

// spaPacket is a fresh native SPA packet asking 2222/tcp for the packet's
// source.
func (s *sesamePeer) spaPacket(dst netip.AddrPort) ([]byte, error) {
	c := client.SPA{Identity: s.id, Gateway: s.gwPub.Gateway(), Dst: dst}
	return c.Packet(policy.Request{Services: []service.Range{{Proto: service.TCP, First: svcPort, Last: svcPort}}, Duration: grantTTL})
}

func (s *sesamePeer) methods() []method {
	return []method{
		knockMethod("sesame knock"),
		{subject: "sesame spa", pace: 55 * time.Millisecond, request: func(r *rig) (agentReq, error) {
			p, err := s.spaPacket(netip.AddrPortFrom(r.b.GW4, spaPort))
			if err != nil {
				return agentReq{}, err
			}
			return agentReq{Op: "try", Datagram: hex.EncodeToString(p), UDPPort: spaPort, Dst: r.b.GW4, Wait: svcPort}, nil
		}},
		fwknopMethod("sesame fwknop", s.fwk),
	}
}

// ---------------------------------------------------------------------------
// Debian's knockd 0.8: the usual setup, a drop-policy nft table whose set
// the start_command fills by forking nft (as in ../shared/bench).

type knockdPeer struct {
	proc *netns.Proc
}

func (k *knockdPeer) name() string   { return "knockd" }
func (k *knockdPeer) pid() int       { return k.proc.PID() }
func (k *knockdPeer) knocks() bool   { return true }
func (k *knockdPeer) output() []byte { return procOutput(k.proc) }

func (k *knockdPeer) start(ctx context.Context, e *env, r *rig) error {
	dir := filepath.Join(r.dir, "knockd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	nft, err := exec.LookPath("nft")
	if err != nil {
		return err
	}
	rules := fmt.Sprintf(`table inet kbench {
	set allowed { type ipv4_addr . inet_service; flags timeout; }
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iifname "lo" accept
		meta l4proto { icmp, ipv6-icmp } accept
		ip saddr . tcp dport @allowed accept
	}
}
`)
	rf := filepath.Join(dir, "kbench.nft")
	conf := fmt.Sprintf("[options]\n\tLogFile = %s/knockd.log\n[open%d]\n\tsequence = 7000,8000,9000\n\tseq_timeout = 5\n\ttcpflags = syn\n\tstart_command = %s add element inet kbench allowed { %%IP%% . %d timeout %ds }\n",
		dir, svcPort, nft, svcPort, int(grantTTL.Seconds()))
	cf := filepath.Join(dir, "knockd.conf")
	if err := os.WriteFile(rf, []byte(rules), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		return err
	}
	if _, err := runIn(ctx, r.b, r.b.GW, nft, "-f", rf); err != nil {
		return err
	}
	// No -v: knockd then prints a line per packet, which a flood turns
	// into a disk and CPU cost of the bench, not of knockd's defaults.
	p, err := r.b.Start(r.b.GW, "knockd", "-4", "-i", netns.GWIf, "-c", cf, "-p", filepath.Join(dir, "knockd.pid"))
	if err != nil {
		return err
	}
	k.proc = p
	// Readiness: the LogFile's "starting up, listening on".
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(filepath.Join(dir, "knockd.log")); strings.Contains(string(b), "listening on") {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("knockd did not start: %s", p.Output())
}

func (k *knockdPeer) reset(ctx context.Context, r *rig) error {
	_, err := runIn(ctx, r.b, r.b.GW, "nft", "flush", "set", "inet", "kbench", "allowed")
	return err
}

func (k *knockdPeer) methods() []method { return []method{knockMethod("knockd")} }

// ---------------------------------------------------------------------------
// Debian's fwknopd 2.6.10, stock: iptables-nft backend (a FWKNOP_INPUT
// rule per grant, made by forking iptables), libpcap capture with the
// default PCAP_LOOP_SLEEP, or a UDP socket with -U.

type fwknopdPeer struct {
	udp  bool
	proc *netns.Proc
	fwk  fwknopKeys
}

func (f *fwknopdPeer) name() string {
	if f.udp {
		return "fwknopd -U"
	}
	return "fwknopd pcap"
}
func (f *fwknopdPeer) pid() int       { return f.proc.PID() }
func (f *fwknopdPeer) knocks() bool   { return false }
func (f *fwknopdPeer) output() []byte { return procOutput(f.proc) }

func (f *fwknopdPeer) start(ctx context.Context, e *env, r *rig) error {
	dir := filepath.Join(r.dir, "fwknopd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ipt, err := exec.LookPath("iptables-nft")
	if err != nil {
		return err
	}
	if f.fwk, err = newFwknopKeys(); err != nil {
		return err
	}
	if _, err := runIn(ctx, r.b, r.b.GW, ipt, "-A", "INPUT", "-p", "tcp", "--dport", strconv.Itoa(svcPort), "-j", "DROP"); err != nil {
		return err
	}
	conf := fmt.Sprintf("PCAP_INTF %s;\nENABLE_PCAP_PROMISC N;\nPCAP_FILTER udp port %d;\nENABLE_SPA_PACKET_AGING Y;\nMAX_SPA_PACKET_AGE 120;\nENABLE_DIGEST_PERSISTENCE Y;\nFIREWALL_EXE %s;\nENABLE_IPT_FORWARDING N;\nFWKNOP_RUN_DIR %s;\nUDPSERV_PORT %d;\n",
		netns.GWIf, spaPort, ipt, dir, spaPort)
	for name, text := range map[string]string{"fwknopd.conf": conf, "access.conf": f.fwk.stanza("")} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			return err
		}
	}
	argv := []string{"fwknopd", "-f", "-c", filepath.Join(dir, "fwknopd.conf"), "-a", filepath.Join(dir, "access.conf"),
		"-p", filepath.Join(dir, "fwknopd.pid"), "-d", filepath.Join(dir, "digest.cache")}
	ready := "main event loop"
	if f.udp {
		argv = append(argv, "-U")
		ready = "UDP server"
	}
	p, err := r.b.Start(r.b.GW, argv...)
	if err != nil {
		return err
	}
	f.proc = p
	if err := waitReady(ctx, p, ready); err != nil {
		return err
	}
	time.Sleep(200 * time.Millisecond)
	return nil
}

func (f *fwknopdPeer) reset(ctx context.Context, r *rig) error {
	_, err := runIn(ctx, r.b, r.b.GW, "iptables-nft", "-F", "FWKNOP_INPUT")
	return err
}

func (f *fwknopdPeer) methods() []method { return []method{fwknopMethod(f.name(), f.fwk)} }
