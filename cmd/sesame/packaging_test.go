package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/sesame-gw/sesame/internal/config"
)

const packaging = "../../packaging/"

func readPackaging(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(packaging + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tomlKeys lists the keys of every table of sesame.toml, by reflection on
// the config types, as "table.key".
func tomlKeys(t reflect.Type, table string, out map[string]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		ft := f.Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		tag := strings.Split(f.Tag.Get("toml"), ",")[0]
		if f.Anonymous && tag == "" {
			tomlKeys(ft, table, out)
			continue
		}
		if tag == "" || tag == "-" {
			continue
		}
		if table == "" && ft.Kind() == reflect.Struct {
			tomlKeys(ft, tag, out)
			continue
		}
		out[table+"."+tag] = true
	}
}

// Every key of sesame.toml is in sesame.toml(5), under its table's section.
func TestManPageHasEveryConfigKey(t *testing.T) {
	man := readPackaging(t, "man/sesame.toml.5")
	keys := map[string]bool{}
	tomlKeys(reflect.TypeFor[config.Config](), "", keys)
	if len(keys) < 30 {
		t.Fatalf("found only %d keys: %v", len(keys), keys)
	}
	sections := map[string]string{}
	for _, s := range regexp.MustCompile(`(?m)^\.SH `).Split(man, -1) {
		name, body, _ := strings.Cut(s, "\n")
		sections[strings.Trim(name, "[]\" ")] = body
	}
	for k := range keys {
		table, key, _ := strings.Cut(k, ".")
		body, ok := sections[table]
		if !ok {
			t.Errorf("sesame.toml(5) has no section for [%s] (key %s)", table, key)
			continue
		}
		if !regexp.MustCompile(`(?m)^\.BR? ` + regexp.QuoteMeta(key) + `( |$)`).MatchString(body) {
			t.Errorf("sesame.toml(5) does not document %s in [%s]", key, table)
		}
	}
}

// Every command is in sesame(8) and in both completions.
func TestManPageAndCompletionsHaveEveryCommand(t *testing.T) {
	man := readPackaging(t, "man/sesame.8")
	bash := readPackaging(t, "completions/sesame.bash")
	zsh := readPackaging(t, "completions/_sesame")
	m := regexp.MustCompile(`local commands="([^"]*)"`).FindStringSubmatch(bash)
	if m == nil {
		t.Fatal("no command list in the bash completion")
	}
	bashCmds := strings.Fields(m[1])
	for name, c := range commands {
		if c.hidden {
			continue
		}
		if !regexp.MustCompile(`(?m)^\.(B|BR|TP|BI) .*\b` + regexp.QuoteMeta(name) + `\b`).MatchString(man) {
			t.Errorf("sesame(8) does not mention %s", name)
		}
		found := false
		for _, b := range bashCmds {
			found = found || b == name
		}
		if !found {
			t.Errorf("bash completion lacks %s", name)
		}
		if !strings.Contains(zsh, "'"+name+":") {
			t.Errorf("zsh completion lacks %s", name)
		}
	}
}

func TestManPagesRender(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff not installed")
	}
	for _, p := range []string{"man/sesame.8", "man/sesame.toml.5"} {
		out, err := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", packaging+p).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("%s: %v\n%s", p, err, out)
		}
	}
}

func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	complete := func(words ...string) string {
		script := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _sesame; echo "${COMPREPLY[*]}"`
		out, err := exec.Command(bash, append([]string{"-c", script, "bash", packaging + "completions/sesame.bash"}, words...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", words, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"sesame", "st"}, "status"},
		{[]string{"sesame", "re"}, "reload revoke"},
		{[]string{"sesame", "status", "--j"}, "--json"},
		{[]string{"sesame", "serve", "--ch"}, "--check"},
		{[]string{"sesame", "revoke", "--so"}, "--socket"},
		{[]string{"sesame", "ca", "i"}, "init issue"},
	} {
		if got := complete(tc.words...); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.words, got, tc.want)
		}
	}
}

func TestZshCompletionParses(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("zsh not installed (Debian package zsh): completion syntax not checked")
	}
	if out, err := exec.Command(zsh, "-n", packaging+"completions/_sesame").CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
}

// The packaged examples are valid configurations.
func TestExamplesAreValid(t *testing.T) {
	if _, errs, code := sesame(t, "serve", "--check", "-c", packaging+"examples/knock.toml"); code != 0 {
		t.Errorf("knock.toml: %s", errs)
	}
	dir := t.TempDir()
	gwKey := filepath.Join(dir, "gateway.key")
	if _, errs, code := sesame(t, "keygen", "--gateway", "-o", gwKey); code != 0 {
		t.Fatal(errs)
	}
	pub, errs, code := sesame(t, "keygen", "-o", filepath.Join(dir, "id.key"))
	if code != 0 {
		t.Fatal(errs)
	}
	spa := readPackaging(t, "examples/spa.toml")
	spa = strings.Replace(spa, "/etc/sesame/gateway.key", gwKey, 1)
	spa = strings.Replace(spa, "sesame-id1:REPLACE-WITH-THE-LAPTOP-KEY", strings.TrimSpace(pub), 1)
	path := filepath.Join(dir, "spa.toml")
	os.WriteFile(path, []byte(spa), 0o600)
	if _, errs, code := sesame(t, "serve", "--check", "-c", path); code != 0 {
		t.Errorf("spa.toml: %s", errs)
	}
}
