package netnstest

import (
	"fmt"
	"runtime"
	"testing"
)

// fakeTB records how a helper ended the test: skip or fatal. Both stop the
// calling goroutine, as the real ones do.
type fakeTB struct {
	testing.TB
	skipped, fatal string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Skip(args ...any) {
	f.skipped = fmt.Sprint(args...)
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skipped = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls fn with a fake on its own goroutine and waits for it.
func run(fn func(tb testing.TB)) *fakeTB {
	f := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

func TestRequireBinary(t *testing.T) {
	const missing = "sesame-no-such-binary"
	for _, tc := range []struct {
		ci, bin           string
		wantSkip, wantErr bool
	}{
		{"", missing, true, false},
		{"false", missing, true, false},
		{"true", missing, false, true},
		{"true", "sh", false, false},
		{"", "sh", false, false},
	} {
		t.Run(tc.ci+"/"+tc.bin, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			f := run(func(tb testing.TB) { RequireBinary(tb, tc.bin) })
			if (f.skipped != "") != tc.wantSkip || (f.fatal != "") != tc.wantErr {
				t.Errorf("CI=%q %s: skipped %q, fatal %q", tc.ci, tc.bin, f.skipped, f.fatal)
			}
		})
	}
}
