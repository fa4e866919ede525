package pool

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/telemetry"
)

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

// done records how the attempt ended (see core.Observe).
func (f *feedback) done(err error) {
	if f == nil {
		return
	}
	core.Observe(f.b, time.Since(f.start), err, f.trailer, f.stream, f.p.o.classify)
}
