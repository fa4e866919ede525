package pool

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/internal/core"
)

// Stalls: a NewStream that waits, past the stall timeout, on a connection
// that carries other streams is given up and placed again; one given up
// while it waited for the transport's stream quota is evidence of the
// server's MAX_CONCURRENT_STREAMS, from which the core learns the
// backend's stream limit (core.Stalled).

// errStalled: NewStream waited on a connection the server would admit no
// more streams on; the stream is placed again elsewhere.
var errStalled = status.Error(codes.Unavailable, "grpcpool: stream stalled on a full connection")

// stallLearning: streams have a stall timer while their connection's
// stream limit is unknown (WithStreamStallTimeout above 0, and no
// WithMaxStreamsPerConn). Once a connection's limit is known the picker
// never places a stream beyond it, and nothing is armed.
func (o *options) stallLearning() bool { return o.learnStreamLimit > 0 && o.maxStreams == 0 }

// armStall starts st's stall timer; st.cancel gives its NewStream up. It
// returns ctx carrying st for markAdmitted. Each attempt of a call given
// up waits twice as long: a call slow for reasons of its own (a
// credentials refresh) gets through, and is not given up for ever.
func (st *stream) armStall(ctx context.Context) (context.Context, *time.Timer) {
	d := st.c.p.o.learnStreamLimit << min(st.c.stalls, 6)
	c := st.pk.Conn
	return context.WithValue(ctx, admitKey{}, st), time.AfterFunc(d, func() {
		n := c.OpenStreams()
		if n == 0 {
			return // nothing else open
		}
		st.stalledAt = n // read only once the state says stalled
		if st.stall() {
			st.cancel()
		}
	})
}

// stalled ends st, whose NewStream the stall timer gave up while
// st.stalledAt streams were open on its connection; NewStream returned
// err. The caller has not seen the stream. Only a NewStream given up while
// it waited for the transport's stream quota says the server admits no
// more than that many streams: one held up before that (per-RPC
// credentials, an interceptor) says nothing of the server.
func (st *stream) stalled(err error) error {
	if err == nil {
		st.cancel()
	} else if quotaWaitEnded(err) {
		p, c, n, id := st.c.p, st.pk.Conn, st.stalledAt, st.c.id
		p.events.push(func(now time.Time) { p.core.Stalled(now, c, n, id) })
	}
	st.finish(core.ErrNotSent)
	return errStalled
}

// quotaWaitEnded reports whether err is how gRPC ends a NewStream whose
// context ended while it waited for the transport's stream quota:
// codes.Canceled with the context's own message. gRPC's per-RPC
// credentials fetch runs before that wait and fails otherwise
// (Unauthenticated or Internal), as does its wait for a ready connection
// (a message of its own); a fetch that ignores the context ends, and the
// stream is then placed if the quota allows it.
func quotaWaitEnded(err error) bool {
	s, ok := status.FromError(err)
	return ok && s.Code() == codes.Canceled && s.Message() == context.Canceled.Error()
}

// admitKey carries, in the context of a NewStream with a stall timer, its
// *stream.
type admitKey struct{}

// markAdmitted is the innermost client stream interceptor of the pool's
// connections while stall learning is on: once gRPC has made the stream
// on the transport (the server has it), the stall timer no longer gives
// it up, however long outer interceptors take to return it.
func markAdmitted(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err == nil {
		if st, ok := ctx.Value(admitKey{}).(*stream); ok {
			st.admit()
		}
	}
	return cs, err
}
