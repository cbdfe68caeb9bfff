package control

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"
)

// FuzzRequest feeds arbitrary bytes through the request decoding and
// dispatch a peer reaches once SO_PEERCRED let it in: never a panic, always
// a response that encodes, an error unless the request was well formed.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		`{"op":"status"}`, `{"op":"reload"}`, `{"op":"revoke","addr":"192.0.2.7","service":"22/tcp"}`,
		`{"op":"revoke","addr":"::ffff:192.0.2.7"}`, `{"op":"revoke","addr":"fe80::1%eth0","service":"udp/53"}`,
		`{"op":1}`, `[]`, `{"op":"revoke","addr":"192.0.2.7","service":"0/tcp"}`, "",
	} {
		f.Add([]byte(s))
	}
	s := &Server{h: &fakeHandler{}}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req Request
		if err := json.NewDecoder(io.LimitReader(bytes.NewReader(b), MaxRequest)).Decode(&req); err != nil {
			return
		}
		resp := s.do(context.Background(), req)
		if resp.OK == (resp.Error != "") {
			t.Fatalf("%q: ok=%v error=%q", b, resp.OK, resp.Error)
		}
		if resp.OK && req.Op != OpStatus && req.Op != OpReload && req.Op != OpRevoke {
			t.Fatalf("%q: unknown op accepted", b)
		}
		if _, err := json.Marshal(resp); err != nil {
			t.Fatal(err)
		}
	})
}
