package pool

import (
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/telemetry"
)

// pushbackKey is the trailer a server sets to ask clients to back off
// (gRFC A6): milliseconds, or a negative value for "do not retry".
const pushbackKey = "grpc-retry-pushback-ms"

// feedback tells PeakEWMA how one attempt went: its latency, or its
// failure with the server's pushback. A nil *feedback (other policies)
// does nothing.
type feedback struct {
	p       *Pool
	b       *core.Backend
	start   time.Time
	trailer metadata.MD
	stream  bool // only failures count: see attempt.feedback
}

// feedback starts the attempt's feedback. With PeakEWMA it adds a
// grpc.Trailer option to opts so a unary attempt's trailer, and any
// pushback in it, can be read; otherwise it returns opts unchanged. A
// stream's feedback counts only a failure before its first answer (with
// the failure penalty: the trailer comes only at the stream's end). Its
// time to a first answer is not a latency: a watch stream's server may
// rightly send nothing for minutes, and a backend must not be shunned for
// it.
func (a *attempt) feedback(opts []grpc.CallOption) []grpc.CallOption {
	p := a.p
	if p.o.policy != PeakEWMA {
		return opts
	}
	a.fb = &feedback{p: p, b: a.pk.Conn.Backend, start: time.Now(), stream: a.kind == telemetry.KindStream}
	if a.fb.stream {
		return opts
	}
	return append(opts[:len(opts):len(opts)], grpc.Trailer(&a.fb.trailer))
}

// done records how the attempt ended: its latency when it succeeded or
// ran out of time (DeadlineExceeded: at least that long), a failure when
// the pool's classifier says the backend failed; calls the classifier
// ignores (the caller's cancellation) teach nothing.
func (f *feedback) done(err error) {
	if f == nil {
		return
	}
	d := time.Since(f.start)
	switch {
	case err == nil:
		if !f.stream {
			f.b.Observe(d, false, 0)
		}
	case status.Code(err) == codes.DeadlineExceeded:
		// The deadline says the latency was at least d; a 5 s penalty
		// for every call a caller's tight deadline cut would shun
		// healthy backends.
		if !f.stream {
			f.b.Observe(d, false, 0)
		}
	case f.p.o.classify(err) == breaker.Failure:
		f.b.Observe(d, true, pushback(f.trailer))
	}
}

// pushback returns the server's pushback in md, 0 when it sent none (or
// asked for no retry at all, a negative value: the failure penalty then
// applies).
func pushback(md metadata.MD) time.Duration {
	v := md.Get(pushbackKey)
	if len(v) == 0 {
		return 0
	}
	ms, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil || ms < 0 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}
