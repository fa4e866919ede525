// Package testutil holds the helpers the tests of pool/, the root package
// and the integration suite share: bounded waits and contexts, real Echo
// backends on loopback (and on a Port that stays bound while its backend
// restarts), manual-resolver targets, pools closed at cleanup, open Bidi
// streams, a self-signed certificate and a slog recorder.
//
// Every wait is bounded (by a context or a deadline) and fails the test
// with what it waited for; everything started is stopped in t.Cleanup.
// Functions that take a testing.TB call t.Helper and may call t.Fatal, so
// they belong on the test's goroutine. The values it returns are safe for
// concurrent use unless their doc says otherwise.
package testutil
