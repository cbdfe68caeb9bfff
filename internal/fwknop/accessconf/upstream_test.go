package accessconf

import (
	"bufio"
	"encoding/json"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sesame-gw/sesame/internal/fwknop"
)

// upstreamFS holds fwknop's test/conf files under conf/, so the include
// paths they contain ("conf/include2_hmac_access.conf") resolve.
var upstreamFS = os.DirFS(filepath.Join("testdata", "upstream"))

func loadUpstreamConf(t testing.TB, name string) (*Config, error) {
	t.Helper()
	return Load("conf/"+name, Options{FS: upstreamFS, Dir: "."})
}

// TestUpstreamAccessConfs parses every access.conf of fwknop's test suite:
// each must parse, or be refused with the error class and key listed.
func TestUpstreamAccessConfs(t *testing.T) {
	refused := map[string]struct {
		err error
		key string
	}{
		"cfb_mode_access.conf":                   {ErrUnsupported, "ENCRYPTION_MODE"},
		"ctr_mode_access.conf":                   {ErrUnsupported, "ENCRYPTION_MODE"},
		"ecb_mode_access.conf":                   {ErrUnsupported, "ENCRYPTION_MODE"},
		"ofb_mode_access.conf":                   {ErrUnsupported, "ENCRYPTION_MODE"},
		"force_nat_access.conf":                  {ErrUnsupported, "FORCE_NAT"},
		"hmac_force_masq_access.conf":            {ErrUnsupported, "FORCE_MASQUERADE"},
		"hmac_force_masq_no_dnat_access.conf":    {ErrUnsupported, "DISABLE_DNAT"},
		"hmac_force_nat_access.conf":             {ErrUnsupported, "FORCE_NAT"},
		"hmac_force_nat_forward_all_access.conf": {ErrUnsupported, "FORWARD_ALL"},
		"hmac_force_snat_access.conf":            {ErrUnsupported, "FORCE_SNAT"},
		"hmac_forward_all_access.conf":           {ErrUnsupported, "FORWARD_ALL"},
		"hmac_forward_all_and_dnat_access.conf":  {ErrUnsupported, "FORWARD_ALL"},
		"hmac_forward_all_masq_access.conf":      {ErrUnsupported, "FORCE_MASQUERADE"},
		"open_ports_force_masq_access.conf":      {ErrUnsupported, "FORCE_MASQUERADE"},
		"require_force_nat_access.conf":          {ErrUnsupported, "FORCE_SNAT"},
		"include_m1_hmac_access.conf":            {ErrUnsupported, "FORCE_NAT"},
		"fuzzing_open_ports_access.conf":         {ErrSyntax, "OPEN_PORTS"},
		"fuzzing_restrict_ports_access.conf":     {ErrSyntax, "RESTRICT_PORTS"},
		"fuzzing_source_access.conf":             {ErrSyntax, "SOURCE"},
		"invalid_source_access.conf":             {ErrSyntax, "SOURCE"},
		"invalid_expire_access.conf":             {ErrSyntax, "ACCESS_EXPIRE"},
		"hmac_invalid_type_access.conf":          {ErrSyntax, "HMAC_DIGEST_TYPE"},
		"hmac_equal_keys_access.conf":            {ErrInvalid, "SOURCE"},
		"gpg_hmac_sha3_512_access.conf":          {ErrUnknownKey, "DIGEST_TYPE"},
		"gpg_hmac_sha512_access.conf":            {ErrUnknownKey, "DIGEST_TYPE"},
		"include_r1_hmac_access.conf":            {ErrInvalid, "include cycle"},
		"include_r2_hmac_access.conf":            {ErrInvalid, "include cycle"},
	}
	files, err := filepath.Glob(filepath.Join("testdata", "upstream", "conf", "*access*.conf"))
	if err != nil || len(files) < 120 {
		t.Fatalf("%d upstream access.conf files, %v", len(files), err)
	}
	ok := 0
	for _, f := range files {
		name := filepath.Base(f)
		cfg, err := loadUpstreamConf(t, name)
		want, isRefused := refused[name]
		switch {
		case strings.HasPrefix(name, "gpg_") && !isRefused && name != "gpg_access.conf":
			// GPG-only stanzas: no Rijndael key.
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "no KEY") {
				t.Errorf("%s: err = %v, want ErrInvalid (no KEY)", name, err)
			}
		case isRefused:
			if !errors.Is(err, want.err) || !strings.Contains(err.Error(), want.key) {
				t.Errorf("%s: err = %v, want %v naming %s", name, err, want.err, want.key)
			}
			var e *Error
			if !errors.As(err, &e) || e.File == "" {
				t.Errorf("%s: error %v does not locate the problem", name, err)
			}
		case err != nil:
			t.Errorf("%s: %v", name, err)
		default:
			ok++
			for _, s := range cfg.Stanzas {
				if s.Keys.Validate() != nil || len(s.Source) == 0 || s.MaxFWTimeout == 0 || s.FWAccessTimeout == 0 {
					t.Errorf("%s: incomplete stanza %+v", name, s)
				}
			}
		}
	}
	t.Logf("%d of %d upstream access.conf files accepted", ok, len(files))
}

func TestUpstreamSpecificConfs(t *testing.T) {
	cfg, err := loadUpstreamConf(t, "hmac_sha256_open_ports_access.conf")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Stanzas[0]
	if got := s.Source.String(); got != "4.3.2.0/24, 127.0.0.0/24, 123.123.123.0/24, 23.43.0.0/16, 10.10.10.10" {
		t.Errorf("SOURCE = %s", got)
	}
	if len(s.OpenPorts) != 4 || s.OpenPorts[0].String() != "6001/udp" || s.Keys.HMACHash != fwknop.SHA256 || s.FWAccessTimeout != 3*time.Second {
		t.Errorf("stanza %+v", s)
	}
	cfg, _ = loadUpstreamConf(t, "multi_stanzas_access.conf")
	if len(cfg.Stanzas) != 4 || cfg.Stanzas[1].Source.String() != "23.43.0.0/16, 123.123.123.123, 10.10.10.10" {
		t.Errorf("multi stanzas: %d, %s", len(cfg.Stanzas), cfg.Stanzas[1].Source)
	}
	cfg, _ = loadUpstreamConf(t, "expired_stanza_access.conf")
	if e := cfg.Stanzas[0].Expire; !e.Equal(time.Date(2001, 3, 10, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("ACCESS_EXPIRE 3/10/01 = %v", e)
	}
	cfg, _ = loadUpstreamConf(t, "legacy_iv_long_key2_access.conf")
	if s := cfg.Stanzas[0]; s.Keys.Mode != fwknop.ModeLegacy || string(s.Keys.Key) != "1234567890123456blah" || len(cfg.Warnings) != 1 {
		t.Errorf("legacy long key: %+v %v", s.Keys, cfg.Warnings)
	}
	cfg, _ = loadUpstreamConf(t, "hmac_cmd_open_close_cycle_access.conf")
	if s := cfg.Stanzas[0]; s.CmdCycleOpen != "/usr/bin/touch /tmp/$IP" || s.CmdCycleClose != "/usr/bin/touch /tmp/2$IP" || s.CmdCycleTimer != time.Second {
		t.Errorf("cmd cycle: %+v", s)
	}
	// include1 includes include2, which includes include3.
	cfg, _ = loadUpstreamConf(t, "include1_hmac_access.conf")
	if len(cfg.Stanzas) != 6 {
		t.Errorf("include1: %d stanzas", len(cfg.Stanzas))
	}
	for i, s := range cfg.Stanzas {
		if s.Index != i {
			t.Errorf("stanza %d has Index %d", i, s.Index)
		}
	}
	// %include_keys replaces the keys of the current stanza.
	cfg, err = loadUpstreamConf(t, "include_keys1_hmac_access.conf")
	if err != nil {
		t.Fatal(err)
	}
	hmacCfg, _ := loadUpstreamConf(t, "hmac_access.conf")
	if string(cfg.Stanzas[0].Keys.Key) != string(hmacCfg.Stanzas[0].Keys.Key) || string(cfg.Stanzas[1].Keys.Key) == string(hmacCfg.Stanzas[0].Keys.Key) {
		t.Error("%include_keys did not set the first stanza's keys only")
	}
}

// record is the part of ../testdata/upstream/*.json this package uses.
type record struct {
	Source     string `json:"source"`
	Packet     string `json:"packet"`
	AccessConf string `json:"access_conf"`
	Decoded    struct {
		Access        string  `json:"access"`
		ClientTimeout *uint32 `json:"client_timeout"`
	} `json:"decoded"`
}

func loadRecords(t *testing.T, name string) []record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "upstream", name))
	if err != nil {
		t.Fatal(err)
	}
	var rs []record
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

var (
	lo   = netip.MustParseAddr("127.0.0.1")
	noon = time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
)

// TestAuthorizeUpstreamPositive sends every upstream positive packet to
// the access.conf its upstream test uses (aging off, as upstream runs
// them): each is granted.
func TestAuthorizeUpstreamPositive(t *testing.T) {
	for _, r := range loadRecords(t, "positive.json") {
		cfg, err := loadUpstreamConf(t, filepath.Base(r.AccessConf))
		if err != nil {
			t.Fatal(err)
		}
		res := Authorize(cfg.Stanzas, Packet{Src: lo, Dst: lo, Payload: []byte(r.Packet)}, AuthOptions{Now: noon})
		if res.Grant == nil || !res.Decrypted {
			t.Errorf("%s: refused: %v", r.Source, res.Err)
			continue
		}
		g := res.Grant
		wantAddr, _, _ := strings.Cut(r.Decoded.Access, ",")
		if wantAddr == "0.0.0.0" {
			wantAddr = lo.String()
		}
		wantTimeout := 3 * time.Second // FW_ACCESS_TIMEOUT 3, or client timeout 3 / 2
		if r.Decoded.ClientTimeout != nil {
			wantTimeout = time.Duration(*r.Decoded.ClientTimeout) * time.Second
		}
		if g.Addr.String() != wantAddr || len(g.Services) != 1 || g.Services[0].String() != "22/tcp" || g.Timeout != wantTimeout {
			t.Errorf("%s: grant %v %v %v, want %s 22/tcp %v", r.Source, g.Addr, g.Services, g.Timeout, wantAddr, wantTimeout)
		}
	}
}

// TestAuthorizeUpstreamNegative: none of the negatives is granted, and
// each is refused for the reason upstream gives.
func TestAuthorizeUpstreamNegative(t *testing.T) {
	for _, r := range loadRecords(t, "negative.json") {
		cfg, err := loadUpstreamConf(t, filepath.Base(r.AccessConf))
		if err != nil {
			t.Fatal(err)
		}
		res := Authorize(cfg.Stanzas, Packet{Src: lo, Dst: lo, Payload: []byte(r.Packet)}, AuthOptions{Now: noon})
		if res.Grant != nil {
			t.Errorf("%s: granted", r.Source)
			continue
		}
		var want error = fwknop.ErrMessage
		switch {
		case strings.Contains(r.Source, "NAT_DNS"):
			want = ErrNAT
		case len(r.Packet) >= fwknop.GPGPacketLen:
			want = fwknop.ErrFormat
		}
		// Only a fully decoded packet counts as decrypted (fwknopd adds
		// the replay digest once fko_new_with_data succeeds, and that
		// includes field validation).
		if !errors.Is(res.Err, want) || res.Decrypted != (want == ErrNAT) {
			t.Errorf("%s: decrypted %v, err %v; want %v", r.Source, res.Decrypted, res.Err, want)
		}
	}
}

// TestAuthorizeFuzzingPackets: upstream's 2,247 malicious packets against
// a legacy-mode "testtest" stanza (perl/FKO/t/04_fuzzing.t): none granted.
func TestAuthorizeFuzzingPackets(t *testing.T) {
	cfg, err := Parse("fuzz.conf", []byte("SOURCE ANY\nKEY testtest\nENCRYPTION_MODE legacy\n"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join("..", "testdata", "upstream", "fuzzing_spa_packets.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		fields := strings.Fields(sc.Text())
		res := Authorize(cfg.Stanzas, Packet{Src: lo, Dst: lo, Payload: []byte(fields[len(fields)-1])}, AuthOptions{Now: noon})
		if res.Grant != nil || res.Err == nil {
			t.Errorf("granted: %s", sc.Text())
		}
		n++
	}
	if n != 2247 {
		t.Errorf("%d packets, want 2247", n)
	}
}

func fsGlob(pattern string) ([]string, error) { return fs.Glob(upstreamFS, pattern) }

func readUpstream(name string) ([]byte, error) { return fs.ReadFile(upstreamFS, name) }
