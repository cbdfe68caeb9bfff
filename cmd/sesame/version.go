package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// version is stamped at link time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func init() {
	register("version", command{summary: "print the version", run: func(args []string, stdout, stderr io.Writer) error {
		v := version
		if bi, ok := debug.ReadBuildInfo(); ok && v == "dev" {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					v = "dev-" + s.Value[:12]
				}
			}
		}
		fmt.Fprintf(stdout, "sesame %s %s %s/%s\n", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	}})
}
