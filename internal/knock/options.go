package knock

// Options configures NewWithOptions. The zero value gives New's behaviour:
// Sesame's scan-proof semantics with DefaultMaxSources.
type Options struct {
	// MaxSources bounds the sources tracked at once; ≤ 0 means
	// DefaultMaxSources. The bound holds in every mode.
	MaxSources int

	// Knockd switches to knockd 0.8's exact semantics (knockd.c sniff() and
	// process_attempt(); docs/knockd-compat.md), for deployments that need
	// bug-for-bug parity:
	//   - a packet to a port that is no step of any door is ignored (knockd's
	//     pcap filter never delivers it), so a port scan can open an
	//     ascending door;
	//   - a repeat of the step just matched fails the attempt
	//     (ReasonRepeatedKnock) instead of being tolerated;
	//   - the packet that fails an attempt is consumed, and while a source
	//     has an attempt in progress no packet starts a new one (not even the
	//     first step of another door);
	//   - a TCP packet whose flags do not match an attempt's door is ignored
	//     by that attempt, whatever its port;
	//   - the sequence timeout is counted in whole seconds of the packet
	//     timestamps and reached when the difference is ≥ Timeout.
	Knockd bool
}
