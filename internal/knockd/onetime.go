package knockd

import (
	"fmt"
	"os"
	"slices"

	"github.com/sesame-gw/sesame/internal/knockdconf"
	"github.com/sesame-gw/sesame/internal/service"
)

// oneTime is a door's One_Time_Sequences file (knockd's
// get_new_one_time_sequence and disable_used_one_time_sequence).
type oneTime struct {
	path    string
	current []service.Service // nil when no sequence is left
}

func openOneTime(path string) (*oneTime, error) {
	o := &oneTime{path: path}
	entries, err := o.read()
	if err != nil {
		return nil, err
	}
	if len(entries) > 0 {
		o.current = entries[0].Sequence
	}
	return o, nil
}

func (o *oneTime) read() ([]knockdconf.OneTimeEntry, error) {
	b, err := os.ReadFile(o.path)
	if err != nil {
		return nil, fmt.Errorf("one-time sequences: %w", err)
	}
	if len(b) > knockdconf.MaxFile {
		return nil, fmt.Errorf("one-time sequences: %s is larger than %d bytes", o.path, knockdconf.MaxFile)
	}
	return knockdconf.ParseOneTime(b), nil
}

// use marks the current sequence used, as knockd does: the first line
// holding it gets '#' written over its first byte. It then moves to the
// next sequence of the file (re-read, so lines appended meanwhile count)
// and returns it, nil when none is left.
func (o *oneTime) use() ([]service.Service, error) {
	entries, err := o.read()
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if slices.Equal(e.Sequence, o.current) {
			f, err := os.OpenFile(o.path, os.O_WRONLY, 0)
			if err != nil {
				return nil, fmt.Errorf("one-time sequences: %w", err)
			}
			_, werr := f.WriteAt([]byte{'#'}, e.Offset)
			serr := f.Sync()
			cerr := f.Close()
			if err := firstErr(werr, serr, cerr); err != nil {
				return nil, fmt.Errorf("one-time sequences: marking line %d of %s used: %w", e.Line, o.path, err)
			}
			break
		}
	}
	if entries, err = o.read(); err != nil {
		return nil, err
	}
	o.current = nil
	if len(entries) > 0 {
		o.current = entries[0].Sequence
	}
	return o.current, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
