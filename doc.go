// Package flawless is an error tracker that emails the one developer who
// caused an error, once per line, however often it fires.
//
// A Go program panics or returns an error; the client package captures the
// stack. The Engine finds the one line of the team's own code that caused
// it (skipping the standard library, third-party modules and the team's
// "building blocks"), blames that line at the revision that was deployed,
// and notifies the developer who last changed it, once per line per week.
//
// # Running it
//
// The engine runs in-process, in the service itself:
//
//	e := flawless.New(flawless.Config{Blamer: b, Notifier: n, Policy: rs})
//	defer e.Close(ctx)
//	defer client.Recover(ctx, e)
//
// or inside flawless-server (cmd/flawless-server), which wraps the same
// engine and takes reports over HTTP from the client package's remote
// reporter.
//
// # The pipeline
//
// [Engine.Report] checks the report against ignored_exceptions, maps each
// frame into the repository ([Source]), classifies the frames against the
// rules ([Policy]: third-party whitelist, only_blame_filepaths_matching,
// building blocks, known errors, never_blame_lines_matching), picks the
// innermost blamable frame, and counts the report under its [report.Key]
// in the current week's partition of the [Store]. That is all the caller
// waits for; a repeated error costs a hash, a map lookup and a counter.
//
// The first occurrence of a key is handed to a bounded pool of workers. A
// worker blames the line ([Blamer]), routes the author's address through
// the rules (remapping, domain, disownership, watchers) and, when the
// thresholds say so, claims the notification atomically in the Store and
// delivers it ([Notifier]). A failed delivery is retried with backoff; the
// pending notification lives in the Store, so a restart resumes it.
//
// # Guarantees
//
// Engine methods are safe for concurrent use. Exactly one notification is
// claimed per decision, across goroutines and across processes sharing a
// Store, because the Store's Update is atomic (package storetest checks
// every Store for it). No panic escapes the engine, its queue is bounded,
// and Report never waits for blame or delivery.
//
// The root package imports only the standard library and package report, so
// a service that embeds the engine with its in-memory store links neither
// git nor TOML nor mail code: those live in the blame, rules and notify
// packages.
package flawless
