package telemetry

import "time"

// StubClock makes Start and the ...Since methods read now instead of the
// monotonic clock, until the returned function restores it. Tests that
// stub it must not run in parallel.
func StubClock(now func() time.Duration) (restore func()) {
	old := monotonic
	monotonic = func() Stamp { return Stamp(now()) }
	return func() { monotonic = old }
}
