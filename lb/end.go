package lb

import (
	"strconv"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

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
//     after the server had answered, counts as neither success nor failure.
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
		d := time.Since(start)
		switch {
		case err == nil, status.Code(err) == codes.DeadlineExceeded:
			b.Observe(d, false, 0)
		case breaker.DefaultClassifier(err) == breaker.Failure:
			b.Observe(d, true, pushback(di.Trailer))
		}
	}
	switch {
	case err == nil, err == core.ErrNotSent:
	case di.BytesReceived && callerEnded(err):
		err = core.ErrNotSent
	case breaker.DefaultClassifier(err) == breaker.Failure:
		b.Failures.Add(1)
	}
	b.Ended.Add(1)
	if done != nil {
		done(err)
	}
}

func callerEnded(err error) bool {
	c := status.Code(err)
	return c == codes.DeadlineExceeded || c == codes.Canceled
}

// pushback returns the server's grpc-retry-pushback-ms in md (gRFC A6), 0
// when it sent none or asked for no retry (a negative value).
func pushback(md metadata.MD) time.Duration {
	v := md.Get("grpc-retry-pushback-ms")
	if len(v) == 0 {
		return 0
	}
	ms, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil || ms < 0 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}
