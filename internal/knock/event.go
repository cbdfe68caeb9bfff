package knock

import (
	"net/netip"

	"github.com/sesame-gw/sesame/internal/service"
)

// Kind says what a packet did to an attempt.
type Kind uint8

// Event kinds.
const (
	// Started: the first step of a door matched; a new attempt is tracked.
	Started Kind = iota + 1
	// Advanced: the next step matched (Stage is the number of steps done).
	Advanced
	// Repeated: the step just matched came again and was tolerated.
	Repeated
	// Completed: the last step matched: open the door for Src.
	Completed
	// Reset: the attempt was abandoned; Reason says why.
	Reset
)

func (k Kind) String() string {
	switch k {
	case Started:
		return "start"
	case Advanced:
		return "step"
	case Repeated:
		return "repeat"
	case Completed:
		return "complete"
	case Reset:
		return "reset"
	}
	return "unknown"
}

// Reasons carried by Reset events.
const (
	ReasonWrongPort = "wrong port"
	ReasonTimeout   = "timeout"
	ReasonEvicted   = "evicted"
	ReasonReplaced  = "doors changed"
	// ReasonRepeatedKnock: with Options.Knockd, the step just matched came
	// again (knockd fails the attempt; Sesame's default tolerates it).
	ReasonRepeatedKnock = "repeated knock"
	// ReasonRotated: a rotating door's period the attempt followed is no
	// longer accepted.
	ReasonRotated = "sequence rotated"
	// ReasonUsed: the sequence the attempt followed was used by a completed
	// knock (one-time and rotating sequences open once).
	ReasonUsed = "sequence used"
)

// Event is one decision of the machine about one attempt.
type Event struct {
	Kind Kind
	Src  netip.Addr
	// Door indexes the doors the machine was built with.
	Door int
	// Stage is the number of steps matched after this event (0 on Reset).
	Stage int
	// Service is the packet's destination (zero for timeouts, evictions).
	Service service.Service
	Reason  string
	// Reached is, on Reset, the number of steps the attempt had matched
	// (knockd logs it on a timeout); 0 otherwise.
	Reached int
}
