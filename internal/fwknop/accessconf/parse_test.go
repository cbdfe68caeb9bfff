package accessconf

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sesame-gw/sesame/internal/fwknop"
)

const keyLines = "KEY fwknoptest\n"

func TestLexing(t *testing.T) {
	cfg, err := Parse("a.conf", []byte(strings.Join([]string{
		"# comment",
		"   # indented comment",
		"; semicolon comment",
		"",
		"KEY ignored before any stanza",
		"SOURCE:   10.0.0.0/8 ,  ANY;   trailing text",
		"KEY:\tpass phrase  ",
		"HMAC_KEY  other key;comment",
		"OPEN_PORTS\ttcp/22,UDP/53 ;",
		"REQUIRE_SOURCE_ADDRESS yes\r",
		"FW_ACCESS_TIMEOUT 45\r",
	}, "\n")), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Stanzas[0]
	if s.Source.String() != "10.0.0.0/8, ANY" || string(s.Keys.Key) != "pass phrase" || string(s.Keys.HMACKey) != "other key" ||
		fmt.Sprint(s.OpenPorts) != "[22/tcp 53/udp]" || !s.RequireSourceAddress || s.FWAccessTimeout != 45*time.Second ||
		s.Keys.HMACHash != fwknop.SHA256 || s.MaxFWTimeout != DefaultMaxFWTimeout || s.Line != 6 {
		t.Errorf("stanza %+v", s)
	}
	var ws []string
	for _, w := range cfg.Warnings {
		ws = append(ws, w.String())
	}
	want := []string{
		"a.conf:5: KEY: ignored: not inside a stanza (a stanza starts with SOURCE)",
		"a.conf:7: KEY: trailing blanks removed from the key (as fwknopd 2.6.11 does; 2.6.10 kept them)",
	}
	if strings.Join(ws, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant\n%s", strings.Join(ws, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		conf string
		err  error
		msg  string
	}{
		{"SOURCE ANY\nKEY k\nOPEN_PORT tcp/22\n", ErrUnknownKey, "x.conf:3: OPEN_PORT: unknown key"},
		{"SOURCE ANY\nKEY k\nsource ANY\n", ErrUnknownKey, "x.conf:3: source:"},
		{"SOURCE ANY\nKEY\n", ErrSyntax, "x.conf:2: KEY: syntax error: no value"},
		{"SOURCE ANY\nKEY ;x\n", ErrSyntax, "x.conf:2: KEY:"},
		{"SOURCE ANY\nKEY __changeme__\n", ErrInvalid, "x.conf:2: KEY: invalid configuration: value is not set"},
		{"SOURCE ANY\nKEY_BASE64 __CHANGEME__\n", ErrInvalid, "KEY_BASE64"},
		{"SOURCE ANY\nKEY_BASE64 not*base64\n", ErrSyntax, "x.conf:2: KEY_BASE64"},
		{"SOURCE ANY\n", ErrInvalid, "x.conf:1: SOURCE: invalid configuration: no KEY"},
		{"SOURCE ANY\nKEY " + strings.Repeat("k", 33) + "\n", ErrInvalid, "1..32 bytes"},
		{"SOURCE ANY\nKEY same\nHMAC_KEY same\n", ErrInvalid, "must differ"},
		{"SOURCE ANY\nKEY k\nHMAC_KEY_BASE64 " + strings.Repeat("QUFB", 46) + "\n", ErrInvalid, "HMAC key must be 1..136 bytes"},
		{"SOURCE 10.0.0.0/0\nKEY k\n", ErrSyntax, "prefix length must be 1..32"},
		{"SOURCE 010.0.0.1\nKEY k\n", ErrSyntax, "SOURCE"},
		{"SOURCE 10.1\nKEY k\n", ErrSyntax, "SOURCE"},
		{"SOURCE ::1\nKEY k\n", ErrSyntax, "SOURCE"},
		{"SOURCE 10.0.0.0/255.0.255.0\nKEY k\n", ErrSyntax, "not contiguous"},
		{"SOURCE ANY\nKEY k\nOPEN_PORTS tcp/0\n", ErrSyntax, "OPEN_PORTS"},
		{"SOURCE ANY\nKEY k\nOPEN_PORTS icmp/1\n", ErrSyntax, "OPEN_PORTS"},
		{"SOURCE ANY\nKEY k\nOPEN_PORTS 22\n", ErrSyntax, "OPEN_PORTS"},
		{"SOURCE ANY\nKEY k\nFW_ACCESS_TIMEOUT -1\n", ErrSyntax, "FW_ACCESS_TIMEOUT"},
		{"SOURCE ANY\nKEY k\nMAX_FW_TIMEOUT 8388609\n", ErrSyntax, "MAX_FW_TIMEOUT"},
		{"SOURCE ANY\nKEY k\nENCRYPTION_MODE Asymmetric\n", ErrUnsupported, "ENCRYPTION_MODE"},
		{"SOURCE ANY\nKEY k\nENCRYPTION_MODE foo\n", ErrSyntax, "ENCRYPTION_MODE"},
		{"SOURCE ANY\nKEY k\nHMAC_DIGEST_TYPE sha3\n", ErrSyntax, "HMAC_DIGEST_TYPE"},
		{"SOURCE ANY\nKEY k\nACCESS_EXPIRE 2030-01-01\n", ErrSyntax, "ACCESS_EXPIRE"},
		{"SOURCE ANY\nKEY k\nACCESS_EXPIRE_EPOCH soon\n", ErrSyntax, "ACCESS_EXPIRE_EPOCH"},
		{"SOURCE ANY\nKEY k\nCMD_CYCLE_OPEN /bin/true\n", ErrInvalid, "without CMD_CYCLE_CLOSE"},
		{"SOURCE ANY\nKEY k\nCMD_CYCLE_CLOSE /bin/true\n", ErrInvalid, "without CMD_CYCLE_OPEN"},
		{"SOURCE ANY\nKEY k\nCMD_CYCLE_OPEN /bin/true\nCMD_CYCLE_CLOSE /bin/false\n", ErrInvalid, "CMD_CYCLE_TIMER is required"},
		{"SOURCE ANY\nKEY k\nCMD_CYCLE_TIMER 0\n", ErrSyntax, "CMD_CYCLE_TIMER"},
		{"SOURCE ANY\nKEY k\nENABLE_CMD_SUDO_EXEC Y\n", ErrUnsupported, "sudo"},
		{"SOURCE ANY\nKEY k\nFORCE_NAT 192.168.1.2 22\n", ErrUnsupported, "FORCE_NAT"},
		{"SOURCE ANY\nKEY k\nFORWARD_ALL Y\n", ErrUnsupported, "FORWARD_ALL"},
		{"SOURCE ANY\nKEY k\n%include other.conf\n", ErrInvalid, "no file system"},
		{"KEY k\n", ErrInvalid, "no SOURCE stanza"},
		{"# nothing\n", ErrInvalid, "no SOURCE stanza"},
		{"SOURCE ANY\nKEY " + strings.Repeat("k", 1100) + "\n", ErrSyntax, "x.conf:2: syntax error: line longer"},
	} {
		_, err := Parse("x.conf", []byte(tc.conf), Options{})
		if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q:\n err = %v\nwant %v containing %q", tc.conf, err, tc.err, tc.msg)
		}
	}
	// Keys restating defaults, and fwknop keys Sesame can safely ignore.
	cfg, err := Parse("x.conf", []byte("SOURCE ANY\nKEY k\nFORWARD_ALL N\nDISABLE_DNAT N\nFORCE_MASQUERADE N\nENABLE_CMD_SUDO_EXEC N\n"+
		"GPG_REMOTE_ID ABCD\nCMD_SUDO_EXEC_USER nobody\nREQUIRE_SOURCE Y\n"), Options{})
	if err != nil || len(cfg.Warnings) != 2 || !cfg.Stanzas[0].RequireSourceAddress {
		t.Errorf("defaults: %v %v", err, cfg)
	}
}

func TestExpire(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	for in, want := range map[string]time.Time{
		"12/31/2030":    time.Date(2030, 12, 31, 0, 0, 0, 0, paris),
		"3/10/01":       time.Date(2001, 3, 10, 0, 0, 0, 0, paris),
		"02/30/2031":    time.Date(2031, 3, 2, 0, 0, 0, 0, paris), // mktime rolls over
		"0/15/2031":     time.Date(2031, 1, 15, 0, 0, 0, 0, paris),
		"1/1/2031 junk": time.Date(2031, 1, 1, 0, 0, 0, 0, paris),
		"06/01/20301":   time.Date(2030, 6, 1, 0, 0, 0, 0, paris),
		"06/01/0099":    time.Date(2099, 6, 1, 0, 0, 0, 0, paris),
		"06/01/1950":    time.Date(1950, 6, 1, 0, 0, 0, 0, paris),
		"06/01/0500":    time.Date(2400, 6, 1, 0, 0, 0, 0, paris), // fwknopd: tm_year = 500
	} {
		cfg, err := Parse("x.conf", []byte("SOURCE ANY\nKEY k\nACCESS_EXPIRE "+in+"\n"), Options{Location: paris})
		if err != nil || !cfg.Stanzas[0].Expire.Equal(want) {
			t.Errorf("ACCESS_EXPIRE %s = %v, %v; want %v", in, cfg, err, want)
		}
	}
	cfg, _ := Parse("x.conf", []byte("SOURCE ANY\nKEY k\nACCESS_EXPIRE_EPOCH 1900000000\n"), Options{})
	s := cfg.Stanzas[0]
	if !s.Expire.Equal(time.Unix(1900000000, 0)) || s.Expired(time.Unix(1900000000, 0)) || !s.Expired(time.Unix(1900000001, 0)) {
		t.Errorf("epoch expiry %v", s.Expire)
	}
}

// includeFS mirrors the %include tests of upstream's basic_operations.pl.
var includeFS = fstest.MapFS{
	"etc/fwknop/def.conf":                    {Data: []byte("SOURCE ANY\nKEY fwknoptest\nFW_ACCESS_TIMEOUT 3\n")},
	"etc/fwknop/access.d/a.conf":             {Data: []byte("SOURCE 5.5.5.5\nKEY five\n")},
	"etc/fwknop/access.d/b.conf_old":         {Data: []byte("SOURCE 6.6.6.6\nKEY six\n")},
	"etc/fwknop/access.d/b.conf.bak":         {Data: []byte("SOURCE 9.9.9.9\nKEY nine\n")},
	"etc/fwknop/access.d/c.txt":              {Data: []byte("not a config")},
	"etc/fwknop/access.d/README":             {Data: []byte("not a config")},
	"etc/fwknop/access.d/sub/d.conf":         {Data: []byte("SOURCE 7.7.7.7\nKEY seven\n")},
	"etc/fwknop/empty/README":                {Data: []byte("nothing")},
	"etc/fwknop/keys/valid":                  {Data: []byte("KEY testtest\nHMAC_KEY test2\n")},
	"etc/fwknop/keys/unauth":                 {Data: []byte("SOURCE any\nKEY test2\n")},
	"etc/fwknop/loop1.conf":                  {Data: []byte("%include loop2.conf\n")},
	"etc/fwknop/loop2.conf":                  {Data: []byte("%include loop1.conf\n")},
	"etc/fwknop/deep1.conf":                  {Data: []byte("%include deep2.conf\n")},
	"etc/fwknop/deep2.conf":                  {Data: []byte("%include def.conf\n")},
	"etc/fwknop/folder-in-folder/x.conf":     {Data: []byte("%include_folder /etc/fwknop/folder-in-folder\n")},
	"etc/fwknop/access.d/sub/ignored/e.conf": {Data: []byte("SOURCE 8.8.8.8\nKEY eight\n")},
}

func parseInc(t *testing.T, text string) (*Config, error) {
	t.Helper()
	return Parse("/etc/fwknop/access.conf", []byte(text), Options{FS: includeFS})
}

func TestIncludes(t *testing.T) {
	stanzaSrc := func(cfg *Config) string {
		var s []string
		for _, st := range cfg.Stanzas {
			s = append(s, st.Source.String()+"@"+st.File)
		}
		return strings.Join(s, " ")
	}
	// "access.conf include mixed stanza (2)": keys after the %include go
	// to the including file's stanza 3; the included one becomes #4.
	cfg, err := parseInc(t, "SOURCE 1.1.1.1\nKEY stanza1test\nREQUIRE_USERNAME user1\nSOURCE 2.2.2.2\nKEY stanza2test\n"+
		"SOURCE 3.3.3.3\n%include def.conf\nKEY stanza3test\nREQUIRE_USERNAME user3\nSOURCE 4.4.4.4\nKEY stanza4test\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := stanzaSrc(cfg); got != "1.1.1.1@/etc/fwknop/access.conf 2.2.2.2@/etc/fwknop/access.conf 3.3.3.3@/etc/fwknop/access.conf ANY@def.conf 4.4.4.4@/etc/fwknop/access.conf" ||
		string(cfg.Stanzas[2].Keys.Key) != "stanza3test" || cfg.Stanzas[2].RequireUsername != "user3" || cfg.Stanzas[3].FWAccessTimeout != 3*time.Second {
		t.Errorf("mixed (2): %s", got)
	}
	// "mixed stanza (1)": stanza 3 never gets a key.
	if _, err := parseInc(t, "SOURCE 3.3.3.3\n%include def.conf\nREQUIRE_USERNAME user3\n"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "no KEY") {
		t.Errorf("mixed (1): %v", err)
	}
	// %include_folder: files whose last extension starts with ".conf"
	// (fwknopd's strrchr + strncmp), in name order, no recursion.
	cfg, err = parseInc(t, "%include_folder /etc/fwknop/access.d/\nSOURCE 1.1.1.1\nKEY k\n")
	if err != nil {
		t.Fatal(err)
	}
	if got := stanzaSrc(cfg); got != "5.5.5.5@/etc/fwknop/access.d/a.conf 6.6.6.6@/etc/fwknop/access.d/b.conf_old 1.1.1.1@/etc/fwknop/access.conf" {
		t.Errorf("folder: %s", got)
	}
	if _, err := parseInc(t, "%include_folder /etc/fwknop/empty\n"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "no SOURCE") {
		t.Errorf("empty folder: %v", err)
	}
	if _, err := parseInc(t, "%include_folder /etc/fwknop/missing\nSOURCE ANY\nKEY k\n"); !errors.Is(err, ErrInvalid) {
		t.Errorf("missing folder: %v", err)
	}
	// %include_keys.
	cfg, err = parseInc(t, "SOURCE 1.1.1.1\nKEY testtest\nSOURCE 2.2.2.2\n%include_keys keys/valid\n")
	if err != nil || string(cfg.Stanzas[1].Keys.Key) != "testtest" || string(cfg.Stanzas[1].Keys.HMACKey) != "test2" {
		t.Errorf("include_keys: %v", err)
	}
	cfg, err = parseInc(t, "SOURCE 1.1.1.1\n%include_keys keys/unauth\n")
	if err != nil || len(cfg.Stanzas) != 1 || string(cfg.Stanzas[0].Keys.Key) != "test2" || len(cfg.Warnings) != 1 {
		t.Errorf("unauthorized include_keys: %v %+v", err, cfg)
	}
	// Cycles and depth.
	if _, err := parseInc(t, "%include loop1.conf\n"); !errors.Is(err, ErrInvalid) {
		t.Errorf("loop: %v", err)
	}
	if _, err := parseInc(t, "%include deep1.conf\n"); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "deeper than 3") {
		t.Errorf("depth: %v", err)
	}
	if _, err := parseInc(t, "%include deep2.conf\n"); err != nil {
		t.Errorf("depth 3: %v", err)
	}
	if _, err := parseInc(t, "%include_folder folder-in-folder\n"); !errors.Is(err, ErrInvalid) {
		t.Errorf("folder recursion: %v", err)
	}
	// Load from the FS with an absolute name.
	cfg, err = Load("/etc/fwknop/deep2.conf", Options{FS: includeFS})
	if err != nil || len(cfg.Stanzas) != 1 {
		t.Errorf("Load: %v", err)
	}
	if _, err := Load("/etc/fwknop/nope.conf", Options{FS: includeFS}); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func TestServerConfig(t *testing.T) {
	c, err := ParseServerConfig("fwknopd.conf", []byte("# defaults only\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.PacketAging || c.MaxPacketAge != 120*time.Second || !c.DigestPersistence || c.DigestFile != "/run/fwknop/digest.cache" ||
		c.AccessFile != "/etc/fwknop/access.conf" || c.Port() != 62201 || c.UDPServer || c.PacketAge() != 120*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	c, err = ParseServerConfig("fwknopd.conf", []byte(strings.Join([]string{
		"ENABLE_SPA_PACKET_AGING   N;",
		"MAX_SPA_PACKET_AGE        300;",
		"FWKNOP_RUN_DIR            /var/lib/sesame;",
		"DIGEST_FILE               $FWKNOP_RUN_DIR/fwknop.digest;",
		"ENABLE_DIGEST_PERSISTENCE no;",
		"PCAP_FILTER               UDP  dst port 4444;",
		"PCAP_INTF                 eth1;",
		"ENABLE_UDP_SERVER         Y;",
		"UDPSERV_PORT              5555;",
		"ENABLE_IPT_FORWARDING     N;",
	}, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	if c.PacketAging || c.PacketAge() != 0 || c.MaxPacketAge != 300*time.Second || c.DigestPersistence ||
		c.DigestFile != "/var/lib/sesame/fwknop.digest" || c.PCAPPort != 4444 || c.Port() != 5555 || len(c.Warnings) != 1 || c.Warnings[0].Key != "PCAP_INTF" {
		t.Errorf("custom: %+v", c)
	}
	for conf, msg := range map[string]string{
		"ENABLE_SPA_OVER_HTTP Y;":        "fwknopd.conf:1: ENABLE_SPA_OVER_HTTP: not supported",
		"ENABLE_IPT_FORWARDING Y;":       "ENABLE_IPT_FORWARDING: not supported",
		"ENABLE_X_FORWARDED_FOR Y;":      "ENABLE_X_FORWARDED_FOR",
		"PCAP_FILE /tmp/x.pcap;":         "PCAP_FILE: not supported",
		"PCAP_FILTER udp portrange 1-2;": "PCAP_FILTER: not supported",
		"MAX_SPA_PACKET_AGE 0;":          "MAX_SPA_PACKET_AGE: syntax error",
		"UDPSERV_PORT 70000;":            "UDPSERV_PORT",
		"DIGEST_FILE $NOPE/x;":           "$NOPE is not set",
		"ENABLE_SPA_PACKET_AGEING N;":    "ENABLE_SPA_PACKET_AGEING: unknown key",
		"VERBOSE;":                       "VERBOSE;: syntax error: no value",
	} {
		if _, err := ParseServerConfig("fwknopd.conf", []byte(conf)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%s: err = %v, want %q", conf, err, msg)
		}
	}
	if c, err := ParseServerConfig("f", []byte("ENABLE_UDP_SERVER Y;\nPCAP_FILTER tcp port 80;\n")); err != nil || c.Port() != 62201 {
		t.Errorf("UDP server ignores PCAP_FILTER: %v", err)
	}
	for f, p := range map[string]uint16{"udp port 62201": 62201, "port 1": 1, "udp and dst port 2": 2, "dst port 3": 3} {
		if got, err := PCAPFilterPort(f); err != nil || got != p {
			t.Errorf("PCAPFilterPort(%q) = %d, %v", f, got, err)
		}
	}
}

// TestUpstreamServerConfs parses every fwknopd.conf of fwknop's test suite.
func TestUpstreamServerConfs(t *testing.T) {
	files, err := fsGlob("conf/*fwknopd.conf")
	if err != nil || len(files) < 50 {
		t.Fatalf("%d files, %v", len(files), err)
	}
	ok := 0
	for _, f := range files {
		b, _ := readUpstream(f)
		_, err := ParseServerConfig(f, b)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Key == "" || !(errors.Is(err, ErrUnsupported) || errors.Is(err, ErrUnknownKey) ||
				errors.Is(err, ErrSyntax) && strings.Contains(f, "invalid")) {
				t.Errorf("%s: unexpected error %v", f, err)
			}
			continue
		}
		ok++
	}
	t.Logf("%d of %d upstream fwknopd.conf files accepted", ok, len(files))
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("SOURCE ANY\nKEY k\nOPEN_PORTS tcp/22\n%include def.conf\n"))
	f.Add([]byte("SOURCE 10.0.0.0/8, 1.2.3.4/255.255.255.0\nKEY_BASE64 wzNP62oPPgEc+kXDPQLHPOayQBuNbYUTPP+QrErNDmg=\nHMAC_KEY x\nACCESS_EXPIRE 1/1/30\nCMD_CYCLE_OPEN a $IP\nCMD_CYCLE_CLOSE NONE\n"))
	f.Add([]byte("%include_folder access.d\n%include_keys keys/valid\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 16<<10 {
			return
		}
		fsys := fstest.MapFS{"etc/fwknop/inc.conf": {Data: b}}
		for k, v := range includeFS {
			fsys[k] = v
		}
		for _, top := range [][]byte{b, []byte("SOURCE ANY\nKEY k\n%include inc.conf\n")} {
			cfg, err := Parse("/etc/fwknop/access.conf", top, Options{FS: fsys})
			if err != nil {
				var e *Error
				for _, one := range unjoin(err) {
					if !errors.As(one, &e) && !strings.Contains(one.Error(), "too many errors") {
						t.Fatalf("error without location: %v", one)
					}
				}
				continue
			}
			for _, s := range cfg.Stanzas {
				if s.Keys.Validate() != nil || s.FWAccessTimeout <= 0 || s.MaxFWTimeout <= 0 || len(s.Source) == 0 {
					t.Fatalf("accepted an unusable stanza %+v", s)
				}
			}
		}
		_, _ = ParseServerConfig("fwknopd.conf", b)
	})
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestIncludeFanOut(t *testing.T) {
	fan := strings.Repeat("%include_folder .\n", 50)
	fsys := fstest.MapFS{"etc/fwknop/a.conf": {Data: []byte(fan)}, "etc/fwknop/b.conf": {Data: []byte(fan)}}
	_, err := Parse("/etc/fwknop/access.conf", []byte(fan), Options{FS: fsys})
	if !errors.Is(err, ErrInvalid) || len(unjoin(err)) > maxErrors+1 {
		t.Errorf("err = %v", err)
	}
	_, err = Parse("x.conf", []byte("SOURCE ANY\nKEY k\n"+strings.Repeat("BAD value\n", 1000)), Options{})
	if n := len(unjoin(err)); n != maxErrors+1 || !strings.Contains(err.Error(), "too many errors") {
		t.Errorf("1000 bad lines: %d errors", n)
	}
}
