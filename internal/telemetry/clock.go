package telemetry

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
)

// A Stamp is when a call or an attempt began, as [Recorder.Start] took
// it: a reading of the monotonic clock, or 0 when no duration was going
// to be recorded. It is a plain value; compare it only with other Stamps.
type Stamp time.Duration

// origin is the process's reference point for Stamps.
var origin = time.Now()

// monotonic reads the monotonic clock as the time since origin. It reads
// one clock where time.Now reads two (the wall clock and the monotonic
// one). A variable, so tests can stub it.
var monotonic = func() Stamp { return Stamp(time.Since(origin)) }

// Start returns the Stamp of a call or attempt that begins now, for
// [Recorder.CallDoneSince] and [Recorder.AttemptDoneSince]. It reads the
// clock only while a duration instrument records: without a Recorder, on
// a no-op provider, and on the global provider before an SDK is installed
// it returns 0 at the cost of a branch, so a call with metrics off reads
// no clock for them.
func (r *Recorder) Start(ctx context.Context) Stamp {
	if r == nil || r.off || !(r.callDur.Enabled(ctx) || r.attemptDur.Enabled(ctx)) {
		return 0
	}
	return max(monotonic(), 1) // never 0, which means "not taken"
}

// since returns the time from start to now; ok is false for the Stamp 0.
func since(start Stamp) (d time.Duration, ok bool) {
	if start == 0 {
		return 0, false
	}
	return time.Duration(monotonic() - start), true
}

// CallDoneSince is [Recorder.CallDone] for a call that began at start.
// A call whose start is 0 (metrics were off when it began) records
// nothing.
func (r *Recorder) CallDoneSince(ctx context.Context, fullMethod string, code codes.Code, start Stamp) {
	if d, ok := since(start); ok {
		r.CallDone(ctx, fullMethod, code, d)
	}
}

// AttemptDoneSince is [Recorder.AttemptDoneIn] for an attempt that began
// at start. An attempt whose start is 0 records nothing.
func (r *Recorder) AttemptDoneSince(ctx context.Context, fullMethod string, code codes.Code, backend string, loc Locality, start Stamp) {
	if d, ok := since(start); ok {
		r.AttemptDoneIn(ctx, fullMethod, code, backend, loc, d)
	}
}
