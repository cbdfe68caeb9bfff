package gateway

import (
	"context"
	"errors"

	"github.com/sesame-gw/sesame/internal/firewall"
)

// noFirewall stands in when the engine runs without a kernel firewall of
// its own (knockd drop-in mode: the user's commands and firewall decide).
// A grant is an error, as nothing could enforce it.
type noFirewall struct{}

var errNoFirewall = errors.New("no firewall configured: this door can only run commands")

func (noFirewall) Setup(context.Context, firewall.Layout) error   { return nil }
func (noFirewall) Grant(context.Context, []firewall.Grant) error  { return errNoFirewall }
func (noFirewall) Revoke(context.Context, []firewall.Grant) error { return nil }
func (noFirewall) List(context.Context) ([]firewall.Grant, error) { return nil, nil }
func (noFirewall) Teardown(context.Context) error                 { return nil }
