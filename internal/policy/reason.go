package policy

import "errors"

// Reason is a stable, log-friendly token naming why a request was refused
// (docs/protocol.md §7). Reasons are sentinel errors: Decide returns errors
// that wrap exactly one of them, with details, so callers branch with
// errors.Is and log ReasonOf(err).
type Reason string

func (r Reason) Error() string { return string(r) }

// The reasons Decide refuses a request.
const (
	ErrUnknownClient     Reason = "unknown-client"
	ErrClientExpired     Reason = "client-expired"
	ErrBadSource         Reason = "bad-source"
	ErrSourceNotAllowed  Reason = "source-not-allowed"
	ErrNoServices        Reason = "no-services"
	ErrServiceNotAllowed Reason = "service-not-allowed"
	ErrBadDuration       Reason = "bad-duration"
	ErrDurationTooLong   Reason = "duration-too-long"
	ErrOtherAddress      Reason = "other-address-not-allowed"
	ErrBadAddress        Reason = "bad-address"
	ErrAddressNotAllowed Reason = "address-not-allowed"
)

// ReasonOf returns the Reason wrapped by err, or "" if there is none.
func ReasonOf(err error) Reason {
	var r Reason
	if errors.As(err, &r) {
		return r
	}
	return ""
}
