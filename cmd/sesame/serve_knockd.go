package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/sesame-gw/sesame/internal/capture/afpacket"
	"github.com/sesame-gw/sesame/internal/config"
	"github.com/sesame-gw/sesame/internal/knockd"
	"github.com/sesame-gw/sesame/internal/knockdconf"
)

// knockdFlags are serve's options for the knockd drop-in mode
// (docs/knockd-compat.md).
type knockdFlags struct {
	conf        string
	ifaces      listFlag
	parity      bool
	stateDir    string
	keepPending bool
	logLevel    string
	logFormat   string
}

// listFlag is a repeatable, comma-separated string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// addKnockdFlags registers the knockd mode's flags on serve's flag set.
func addKnockdFlags(fs *flag.FlagSet) *knockdFlags {
	k := &knockdFlags{}
	fs.StringVar(&k.conf, "knockd-conf", "", "run an existing knockd.conf (knockd drop-in mode: no sesame.toml, no firewall of Sesame's own)")
	fs.Var(&k.ifaces, "i", "knockd mode: interface to watch (repeatable or comma-separated; overrides the file's Interface; default: all but lo)")
	fs.BoolVar(&k.parity, "knockd-parity", false, "knockd mode: judge knocks exactly as knockd 0.8 does (not scan-proof; see docs/knockd-compat.md)")
	fs.StringVar(&k.stateDir, "state-dir", config.DefaultStateDir, "knockd mode: where pending stop commands are kept across restarts")
	fs.BoolVar(&k.keepPending, "keep-pending", false, "knockd mode: at shutdown keep pending stop commands for the next start instead of running them now")
	fs.StringVar(&k.logLevel, "log-level", "info", "knockd mode: debug, info, warn or error")
	fs.StringVar(&k.logFormat, "log-format", "text", "knockd mode: text or json")
	return k
}

func (k *knockdFlags) enabled() bool { return k.conf != "" }

func readKnockdConf(path string) (*knockdconf.Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, knockdconf.MaxFile+1))
	if err != nil {
		return nil, err
	}
	return knockdconf.Parse(path, b)
}

// runServeKnockd runs `sesame serve --knockd-conf FILE`.
func runServeKnockd(k *knockdFlags, stderr io.Writer) error {
	conf, err := readKnockdConf(k.conf)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, k.logFormat, k.logLevel)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	ifaces := []string(k.ifaces)
	if len(ifaces) == 0 && conf.Options.Interface != "" {
		ifaces = []string{conf.Options.Interface}
	}
	events, err := knockd.OpenEventLog(conf.Options, nil, func(err error) {
		log.Warn("knockd log lines go to LogFile only", "err", err)
	})
	if err != nil {
		return err
	}
	defer events.Close()
	if conf.Options.PidFile != "" {
		if err := os.WriteFile(conf.Options.PidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			log.Warn("cannot write the pid file", "file", conf.Options.PidFile, "err", err)
		} else {
			defer os.Remove(conf.Options.PidFile)
		}
	}
	var src *afpacket.Source
	srv, err := knockd.New(knockd.Config{
		Conf:        conf,
		ConfFile:    k.conf,
		Interfaces:  ifaces,
		StateFile:   filepath.Join(k.stateDir, "knockd-pending.json"),
		Parity:      k.parity,
		KeepPending: k.keepPending,
		Logger:      log,
		Events:      events,
		Runner:      knockd.ShellRunner{Output: stderr},
		SetFilter: func(f afpacket.Filter) error {
			if src == nil {
				return nil
			}
			return src.SetFilter(f)
		},
	})
	if err != nil {
		return err
	}
	src, err = afpacket.Open(afpacket.Config{Interfaces: ifaces, Filter: srv.Filter(), Logger: log})
	if err != nil {
		return fmt.Errorf("capture: %w", err)
	}
	defer src.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // at once: SIGHUP's default action would end the daemon
	defer signal.Stop(hup)
	go reloadOnHUP(ctx, hup, k.conf, srv, log)
	if err := srv.Run(ctx, src); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	st := src.Stats()
	log.Info("stopped", "packets", st.Received, "dropped", st.Dropped)
	return nil
}

// reloadOnHUP re-reads the file on SIGHUP (knockd's reload); a file that
// no longer parses keeps the running configuration (knockd exits).
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, path string, srv *knockd.Server, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			conf, err := readKnockdConf(path)
			if err != nil {
				log.Error("reload: configuration refused, keeping the running one", "err", err)
				continue
			}
			srv.Reload(conf)
		}
	}
}
