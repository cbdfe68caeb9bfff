package knockd

import (
	"fmt"
	"io"
	"log/syslog"
	"os"
	"sync"
	"time"

	"github.com/sesame-gw/sesame/internal/knockdconf"
)

// EventLog writes knockd's log lines (knockd.c logprint()): to LogFile as
// "[YYYY-MM-DD HH:MM] msg" in local time, and with UseSyslog to syslog
// (ident "knockd", LOG_USER, LOG_NOTICE). Messages are cut at 1023 bytes as
// knockd's buffer does. A nil *EventLog logs nothing. Safe for concurrent
// use.
type EventLog struct {
	mu   sync.Mutex
	file io.WriteCloser
	sys  *syslog.Writer
	now  func() time.Time
}

// OpenEventLog opens what opts asks for. A LogFile that cannot be opened is
// an error (knockd only warns and logs nowhere). When syslog cannot be
// reached (no syslog daemon, as in many containers), lines go to the file
// only and warn, if not nil, is told why: knockd's openlog never fails.
func OpenEventLog(opts knockdconf.Options, now func() time.Time, warn func(error)) (*EventLog, error) {
	if now == nil {
		now = time.Now
	}
	l := &EventLog{now: now}
	if opts.LogFile != "" {
		f, err := os.OpenFile(opts.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("knockd log file: %w", err)
		}
		l.file = f
	}
	if opts.UseSyslog {
		w, err := syslog.New(syslog.LOG_NOTICE|syslog.LOG_USER, "knockd")
		if err != nil && warn != nil {
			warn(fmt.Errorf("UseSyslog: %w", err))
		}
		l.sys = w
	}
	return l, nil
}

// NewEventLog writes to w (tests, or a custom sink).
func NewEventLog(w io.WriteCloser, now func() time.Time) *EventLog {
	if now == nil {
		now = time.Now
	}
	return &EventLog{file: w, now: now}
}

// Printf logs one message.
func (l *EventLog) Printf(format string, args ...any) {
	if l == nil || l.file == nil && l.sys == nil {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if len(msg) > 1023 {
		msg = msg[:1023]
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sys != nil {
		_ = l.sys.Notice(msg)
	}
	if l.file != nil {
		t := l.now().Local()
		fmt.Fprintf(l.file, "[%04d-%02d-%02d %02d:%02d] %s\n", t.Year(), int(t.Month()), t.Day(), t.Hour(), t.Minute(), msg)
	}
}

// Close closes the file and the syslog connection.
func (l *EventLog) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if l.file != nil {
		err = l.file.Close()
		l.file = nil
	}
	if l.sys != nil {
		l.sys.Close()
		l.sys = nil
	}
	return err
}
