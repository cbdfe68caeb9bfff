package main

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The flood generator: `bench flood ...`, run by the coordinator inside the
// client namespace (ip netns exec), never elsewhere. It writes raw IPv4
// packets with spoofed sources from one prefix (blackholed by the
// coordinator on the host and in the gateway namespace) to one destination
// on the bench's veth. It is bounded in packets and seconds, and stops
// early when its standard input closes (the coordinator closes it, or dies).
//
// Output on stdout: "progress SENT NANOS" lines every -progress packets and
// a final "done SENT NANOS ERRORS".

// floodKind is one kind of generated packet.
type floodKind int

const (
	kindSYN     floodKind = iota // TCP SYN to a knock port
	kindBin                      // random binary UDP datagram, random length, to the SPA port
	kindD3                       // UDP with the native SPA magic and version, a valid length, random rest (fails mac1)
	kindB64                      // base64 text shaped like fwknop (passes LooksLikeFwknop, fails the HMAC)
	kindPayload                  // the next payload of -payloads (valid SPA packets, one per source)
)

var kindNames = map[string]floodKind{"syn": kindSYN, "bin": kindBin, "d3": kindD3, "b64": kindB64}

// parseMix parses "syn=2,bin=1,..." into a weighted cycle of kinds.
func parseMix(s string) ([]floodKind, error) {
	var cycle []floodKind
	for part := range strings.SplitSeq(s, ",") {
		if part == "" {
			continue
		}
		name, w, ok := strings.Cut(part, "=")
		n := 1
		if ok {
			var err error
			if n, err = strconv.Atoi(w); err != nil || n < 0 || n > 100 {
				return nil, fmt.Errorf("flood: bad weight in %q", part)
			}
		}
		k, found := kindNames[name]
		if !found {
			return nil, fmt.Errorf("flood: unknown kind %q (syn, bin, d3, b64)", name)
		}
		for range n {
			cycle = append(cycle, k)
		}
	}
	if len(cycle) == 0 {
		return nil, errors.New("flood: empty mix")
	}
	return cycle, nil
}

type floodOpts struct {
	src        netip.Prefix
	dst        netip.Addr
	spaPort    uint16
	knockPorts []uint16
	mix        []floodKind
	pps        float64
	maxPackets uint64
	maxTime    time.Duration
	threads    int
	sequential bool // sources in order (n-th packet pair from the n-th address), not random
	perSource  int  // packets per source in sequential mode
	progress   uint64
	payloads   [][]byte
}

func runFlood(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("flood", flag.ContinueOnError)
	src := fs.String("src", "", "spoofed source prefix (IPv4)")
	dst := fs.String("dst", "", "destination address")
	spaPort := fs.Uint("spa-port", 62201, "UDP port for datagram kinds")
	knock := fs.String("knock-ports", "7000", "comma-separated TCP ports for SYNs")
	mix := fs.String("mix", "syn,bin,d3,b64", "weighted kinds: syn,bin,d3,b64 (e.g. syn=2,bin=1)")
	pps := fs.Float64("pps", 0, "packets per second over all threads (0: as fast as possible)")
	maxPackets := fs.Uint64("packets", 10_000_000, "stop after this many packets")
	maxTime := fs.Duration("seconds", 60*time.Second, "stop after this long")
	threads := fs.Int("threads", 1, "sending threads")
	seq := fs.Bool("sequential", false, "walk the source prefix in order (distinct sources) instead of random sources")
	perSource := fs.Int("per-source", 1, "with -sequential, packets sent from each source (consecutive kinds of the mix)")
	progress := fs.Uint64("progress", 0, "print a progress line every this many packets (0: never)")
	payloads := fs.String("payloads", "", "file of hex payloads, one per line: send each once to -spa-port from successive sources (overrides -mix)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := floodOpts{spaPort: uint16(*spaPort), pps: *pps, maxPackets: *maxPackets, maxTime: *maxTime,
		threads: max(*threads, 1), sequential: *seq, perSource: max(*perSource, 1), progress: *progress}
	var err error
	if o.src, err = netip.ParsePrefix(*src); err != nil || !o.src.Addr().Is4() {
		return fmt.Errorf("flood: -src %q: want an IPv4 prefix", *src)
	}
	if o.dst, err = netip.ParseAddr(*dst); err != nil || !o.dst.Is4() {
		return fmt.Errorf("flood: -dst %q: want an IPv4 address", *dst)
	}
	for p := range strings.SplitSeq(*knock, ",") {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("flood: knock port %q", p)
		}
		o.knockPorts = append(o.knockPorts, uint16(n))
	}
	if *payloads != "" {
		if o.payloads, err = readPayloads(*payloads); err != nil {
			return err
		}
		o.mix = []floodKind{kindPayload}
		o.sequential = true
		o.maxPackets = min(o.maxPackets, uint64(len(o.payloads)))
	} else if o.mix, err = parseMix(*mix); err != nil {
		return err
	}
	return generate(o, stdin, stdout)
}

func readPayloads(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 8192), 8192)
	for sc.Scan() {
		b, err := hex.DecodeString(strings.TrimSpace(sc.Text()))
		if err != nil {
			return nil, fmt.Errorf("flood: %s: %w", path, err)
		}
		out = append(out, b)
	}
	return out, sc.Err()
}

func generate(o floodOpts, stdin io.Reader, stdout io.Writer) error {
	stop := make(chan struct{})
	var once sync.Once
	halt := func() { once.Do(func() { close(stop) }) }
	go func() { io.Copy(io.Discard, stdin); halt() }()
	time.AfterFunc(o.maxTime, halt)

	var sent, errs atomic.Uint64
	var next atomic.Uint64 // packet index handed out to threads
	start := time.Now()
	var outMu sync.Mutex
	var wg sync.WaitGroup
	for t := range o.threads {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			halt()
			wg.Wait()
			return fmt.Errorf("flood: raw socket: %w", err)
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		wg.Go(func() {
			defer unix.Close(fd)
			runtime.LockOSThread()
			rnd := rand.New(rand.NewPCG(uint64(t)+1, uint64(time.Now().UnixNano())))
			var sa unix.SockaddrInet4
			sa.Addr = o.dst.As4()
			buf := make([]byte, 2048)
			pay := make([]byte, 1500)
			for {
				const chunk = 64
				base := next.Add(chunk) - chunk
				for i := base; i < base+chunk; i++ {
					if i >= o.maxPackets {
						halt()
						return
					}
					if i%1024 == 0 {
						select {
						case <-stop:
							return
						default:
						}
					}
					if o.pps > 0 {
						due := start.Add(time.Duration(float64(i) / o.pps * float64(time.Second)))
						if d := time.Until(due); d > 0 {
							select {
							case <-stop:
								return
							case <-time.After(d):
							}
						}
					}
					pkt := o.packet(i, rnd, buf, pay)
					if err := unix.Sendto(fd, pkt, 0, &sa); err != nil {
						errs.Add(1)
						if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
							halt() // blackholed or refused: nothing to gain by retrying
							return
						}
						continue
					}
					n := sent.Add(1)
					if o.progress > 0 && n%o.progress == 0 {
						outMu.Lock()
						fmt.Fprintf(stdout, "progress %d %d\n", n, time.Since(start).Nanoseconds())
						outMu.Unlock()
					}
				}
			}
		})
	}
	wg.Wait()
	halt()
	fmt.Fprintf(stdout, "done %d %d %d\n", sent.Load(), time.Since(start).Nanoseconds(), errs.Load())
	return nil
}

// packet builds packet number i into buf.
func (o *floodOpts) packet(i uint64, rnd *rand.Rand, buf, pay []byte) []byte {
	var src netip.Addr
	kind := o.mix[i%uint64(len(o.mix))]
	if o.sequential {
		src = nthAddr(o.src, uint32(i/uint64(o.perSource)))
		kind = o.mix[(i%uint64(o.perSource))%uint64(len(o.mix))]
		if len(o.payloads) > 0 {
			kind = kindPayload
		}
	} else {
		src = nthAddr(o.src, rnd.Uint32())
	}
	sport := uint16(1024 + rnd.IntN(64000))
	switch kind {
	case kindSYN:
		port := o.knockPorts[rnd.IntN(len(o.knockPorts))]
		return buildSYN(buf, src, o.dst, sport, port, rnd.Uint32())
	case kindBin:
		p := pay[:1+rnd.IntN(1400)]
		fillRandom(rnd, p)
		return buildUDP(buf, src, o.dst, sport, o.spaPort, p)
	case kindD3:
		p := pay[:90+rnd.IntN(1232-90+1)]
		fillRandom(rnd, p)
		p[0], p[1] = 0xD3, 0x01
		return buildUDP(buf, src, o.dst, sport, o.spaPort, p)
	case kindB64:
		var raw [300]byte
		n := 105 + rnd.IntN(150) // 140..340 base64 characters
		fillRandom(rnd, raw[:n])
		p := pay[:base64.RawStdEncoding.EncodedLen(n)]
		base64.RawStdEncoding.Encode(p, raw[:n])
		p[0] = "89+/"[rnd.IntN(4)]
		return buildUDP(buf, src, o.dst, sport, o.spaPort, p)
	default:
		return buildUDP(buf, src, o.dst, sport, o.spaPort, o.payloads[i%uint64(len(o.payloads))])
	}
}

func fillRandom(rnd *rand.Rand, b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := rnd.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}
