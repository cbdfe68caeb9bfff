// Package knockd is the drop-in runtime behind `sesame serve --knockd-conf`:
// it runs an existing knockd.conf (knockd 0.8) unchanged, on Sesame's knock
// state machine and an AF_PACKET capture, without any firewall of its own
// (the file's commands and the user's firewall decide everything).
//
// What it keeps from knockd: commands run through `/bin/sh -c` with %IP%
// replaced by the knocker's address (only ever a parsed address, so no
// shell injection), Start_Command_6/Stop_Command_6 with knockd's fallbacks,
// the stop command Cmd_Timeout seconds after the start command finished,
// One_Time_Sequences files whose used lines get a '#' written over their
// first byte, LogFile lines in knockd's format ("[YYYY-MM-DD HH:MM] msg"),
// UseSyslog (ident knockd, LOG_USER, LOG_NOTICE), Target.
//
// What it fixes (docs/knockd-compat.md): pending stop commands are written
// to the state directory, so they survive a restart or a crash and are run
// at shutdown (knockd loses them and the hole stays open); one-time
// sequences advance for IPv6 knockers too; several interfaces and VLANs are
// watched; and, unless Config.Parity is set, knocks are judged by Sesame's
// scan-proof rules (any other knock-capable packet from the source resets
// it, a repeated knock is tolerated).
//
// Operations (docs/operations.md): Reload, Status and Revoke serve SIGHUP,
// `sesame reload`, `sesame status` and `sesame revoke` (which runs a
// source's pending stop commands now: this mode holds no grant of its
// own), and Config.OnDecision reports every grant, grant-failed, reset,
// revoke and stop-failed decision to the audit log and the metrics.
//
// Concurrency: Server.Run owns all state on one goroutine; commands run on
// a small pool of workers and report back to it; Reload, Status and Revoke
// run on it through a control channel, from any goroutine.
package knockd
