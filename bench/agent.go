package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/sesame-gw/sesame/internal/client"
	"github.com/sesame-gw/sesame/internal/service"
)

// The client agent: `bench agent`, run by the coordinator inside the
// client namespace. It reads one JSON request per line on stdin and
// answers one JSON line on stdout, until stdin closes. Every subject is
// measured by this same code: send the knocks or the datagram, then start
// a fresh non-blocking connect every IntervalUS (client.WaitTCP, the code
// behind `sesame knock --wait`) until one completes.

// agentReq is one request to the agent.
type agentReq struct {
	// Op is "try" (knock or datagram, then wait for the port) or
	// "connect" (Count plain connects to Wait, each timed).
	Op string `json:"op"`
	// Knock lists TCP/UDP ports to knock on Dst, in order.
	Knock []string `json:"knock,omitempty"`
	// Datagram is a hex payload sent from the default source to Dst:UDPPort.
	Datagram string     `json:"datagram,omitempty"`
	UDPPort  uint16     `json:"udp_port,omitempty"`
	Dst      netip.Addr `json:"dst"`
	// Wait is the TCP port polled after sending.
	Wait       uint16 `json:"wait"`
	TimeoutMS  int    `json:"timeout_ms"`
	IntervalUS int    `json:"interval_us"`
	Count      int    `json:"count,omitempty"`
}

// agentResp is the answer: OK and US (send → open, µs) for a try; Samples
// (µs) for connect.
type agentResp struct {
	OK      bool      `json:"ok"`
	US      float64   `json:"us,omitempty"`
	Samples []float64 `json:"samples,omitempty"`
	Err     string    `json:"err,omitempty"`
}

func runAgent(stdin io.Reader, stdout io.Writer) error {
	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	enc := json.NewEncoder(stdout)
	for sc.Scan() {
		var req agentReq
		var resp agentResp
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			resp.Err = err.Error()
		} else {
			resp = serve(req)
		}
		if err := enc.Encode(resp); err != nil {
			return err
		}
	}
	return sc.Err()
}

func serve(req agentReq) agentResp {
	timeout := time.Duration(req.TimeoutMS) * time.Millisecond
	if timeout <= 0 || timeout > time.Minute {
		timeout = 2 * time.Second
	}
	interval := time.Duration(req.IntervalUS) * time.Microsecond
	if interval <= 0 {
		interval = 200 * time.Microsecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+time.Second)
	defer cancel()
	dst := netip.AddrPortFrom(req.Dst, req.Wait)
	switch req.Op {
	case "try":
		if err := send(ctx, req); err != nil {
			return agentResp{Err: err.Error()}
		}
		sent := time.Now()
		if err := client.WaitTCP(ctx, dst, interval, timeout); err != nil {
			return agentResp{Err: err.Error()}
		}
		return agentResp{OK: true, US: float64(time.Since(sent).Nanoseconds()) / 1e3}
	case "connect":
		var out []float64
		d := net.Dialer{Timeout: timeout}
		for range min(max(req.Count, 1), 10000) {
			t0 := time.Now()
			c, err := d.DialContext(ctx, "tcp", dst.String())
			if err != nil {
				return agentResp{Samples: out, Err: err.Error()}
			}
			out = append(out, float64(time.Since(t0).Nanoseconds())/1e3)
			c.Close()
		}
		return agentResp{OK: true, Samples: out}
	default:
		return agentResp{Err: fmt.Sprintf("unknown op %q", req.Op)}
	}
}

func send(ctx context.Context, req agentReq) error {
	if len(req.Knock) > 0 {
		steps := make([]service.Service, len(req.Knock))
		for i, k := range req.Knock {
			s, err := service.Parse(k, service.TCP)
			if err != nil {
				return err
			}
			steps[i] = s
		}
		return client.Knock(ctx, req.Dst, steps, 0)
	}
	pkt, err := hex.DecodeString(req.Datagram)
	if err != nil || len(pkt) == 0 {
		return fmt.Errorf("bad datagram: %v", err)
	}
	return client.SendUDP(netip.AddrPortFrom(req.Dst, req.UDPPort), pkt)
}
