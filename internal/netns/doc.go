// Package netns builds a throwaway two-host network bench out of Linux
// network namespaces: a gateway namespace and a client namespace joined by
// one veth pair, with IPv4 and IPv6 addresses. `sesame demo` runs the daemon
// on it, and every end-to-end test gets one through package netnstest.
//
// Topology of a bench with index N (see [Bench] for the exact addresses):
//
//	[NAME<N>-cl] veth-cl Client4, Client4b, Client6, Client6b
//	                 <== veth ==>
//	             veth-gw GW4, GW6 [NAME<N>-gw]
//
// # Safety
//
// Packets stay on the veth pair. The veth is created inside the client
// namespace and one end is moved to the gateway namespace, so the host
// namespace never holds a link of the bench. While a bench exists the host
// namespace (the namespace of the process that called [New]) carries
// `blackhole` routes for both prefixes, tagged with protocol [RouteProto]:
// a command that forgot `ip netns exec` fails locally instead of following
// the host's default route off the machine. The routes are installed before
// the namespaces and removed after them.
//
// [Bench.Close] stops only the processes that [Bench.Start] started, one by
// one by PID (SIGTERM, then SIGKILL after Options.StopGrace), then deletes
// the namespaces and the routes. Processes also carry SIGKILL as their
// parent-death signal, so a test binary killed by `go test -timeout` takes
// them along; its namespaces and routes are then removed by the next bench
// that claims the same index.
//
// # Distinct benches
//
// Names and prefixes derive from one index in [1, MaxIndex]. The index is
// claimed with an exclusive flock(2) on /run/sesame-netns/index-N.lock,
// held for the life of the bench. The kernel drops the lock when the holder
// dies, so a crashed test never leaves an index taken, and two benches (in
// one process or in two `go test` binaries running side by side) never hold
// the same index. The first candidate is derived from the PID and a
// per-process counter only to spread the search; the lock is what
// guarantees distinctness. Because the holder of an index is the only user
// of its names and prefixes, a namespace or a blackhole route (with
// [RouteProto]) of that index found at [New] is a leftover of a dead holder
// and is removed first. An index whose prefixes overlap an address or a route
// (more specific than /8) of the host namespace is skipped, so a blackhole
// never shadows a real network.
//
// # Sockets inside a namespace
//
// [Bench.DialTCP], [Bench.ListenTCP], [Bench.ListenUDP], [Bench.DialUDP],
// [Bench.SendUDP] and [Bench.Reachable] need no helper binary. They run on a
// fresh goroutine that calls runtime.LockOSThread and never unlocks, switches
// that thread into the namespace with setns(2) (golang.org/x/sys/unix.Setns
// on /run/netns/NAME, CLONE_NEWNET), and creates the socket there. A socket
// keeps the namespace it was created in, so it can be used from any
// goroutine afterwards. When the goroutine returns, the Go runtime
// terminates its locked thread instead of reusing it, so no other goroutine
// ever runs in the switched namespace; the runtime starts new threads from a
// clean template thread, never by cloning a locked one. The code run on that
// thread creates its socket on the calling goroutine and resolves no names.
//
// Processes are started with `ip netns exec NS argv...` (argv, never a shell
// string); ip execs the command, so the PID is the command's own.
//
// The package is Linux only; on other systems [New] returns
// [errors.ErrUnsupported], so programs importing it still build.
package netns
