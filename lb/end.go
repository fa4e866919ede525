package lb

import (
	"time"

	"google.golang.org/grpc/balancer"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/internal/core"
)

// end is where an attempt the picker placed ends: grpc calls it once per
// pick, with what became of the RPC. It makes, in one place, the
// end-of-attempt decisions the pool makes for its own attempts:
//
//   - the connection is released, and the core told when that drained a
//     retired one;
//   - the backend's counters: calls in flight, ended, failures;
//   - PeakEWMA's feedback: the attempt's latency (a deadline that cut it
//     counts as the time it ran), or its failure with the server's
//     grpc-retry-pushback-ms;
//   - the breaker's verdict, by breaker.DefaultClassifier: an attempt that
//     never reached the server (nothing sent), or that the caller ended
//     (after the server had answered, or by cancelling it), counts as
//     neither success nor failure; when that gives a half-open breaker's
//     probe slot back, the picker is published again, so the calls the
//     breaker refused pick again.
//
// The feedback and the verdict are core.Observe and core.Settle, which the
// pool's attempts go through too.
//
// start is when it was placed (PeakEWMA only; zero otherwise); done is
// its breaker's, nil without breakers.
func (g *gen) end(c *core.Conn, done func(error), start time.Time, di balancer.DoneInfo) {
	b := c.Backend
	b.Calls.Add(-1)
	if c.Release() {
		g.b.q.Push(func(now time.Time) { g.k.Drained(now, c) })
	}
	err := di.Err
	if !di.BytesSent {
		// Never reached the server (the SubConn left READY under the
		// pick): it says nothing about the backend.
		err = core.ErrNotSent
	} else if !start.IsZero() {
		core.Observe(b, time.Since(start), err, di.Trailer, false, breaker.DefaultClassifier)
	}
	err = core.Settle(b, err, di.BytesReceived, breaker.DefaultClassifier)
	b.Ended.Add(1)
	if done != nil {
		done(err)
		if core.ProbeGivenBack(b, err, breaker.DefaultClassifier) {
			// grpc keeps the WaitForReady calls the breaker refused
			// waiting for a new picker: publish this one again.
			g.republish(nil)
		}
	}
}
