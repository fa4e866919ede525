package pool

import (
	"cmp"
	"context"
	"io"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
)

// errNotSent is what a breaker is told about a call that was picked but
// never sent: the default classifier ignores it (codes.Canceled).
var errNotSent = status.Error(codes.Canceled, "grpcpool: call not sent")

// errStalled: NewStream waited on a connection the server would admit no
// more streams on; the stream is placed again elsewhere.
var errStalled = status.Error(codes.Unavailable, "grpcpool: stream stalled on a full connection")

// Invoke performs a unary RPC on one of the pool's connections and returns
// after the response is received into reply. With WithRetry, a failed
// attempt is retried on another backend under the retry policy.
func (p *Pool) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if p.o.retry == nil {
		pk, err := p.pick(ctx, method, opts, nil)
		if err != nil {
			return err
		}
		return p.invoke(ctx, pk, method, args, reply, opts)
	}
	p.budget.Deposit()
	var tr tried
	var last error // the error of the last attempt made
	for attempt := 1; ; attempt++ {
		pk, err := p.pick(ctx, method, opts, &tr)
		if err != nil {
			// Nothing can take the call now (every breaker open, nothing
			// ready): fail at once, as without WithRetry. A backoff would
			// not change that, and would spend the retry budget.
			return cmp.Or(last, err)
		}
		tr.add(pk.c.b)
		err = p.invoke(ctx, pk, method, args, reply, opts)
		var again bool
		if again, err = p.retryAfter(ctx, attempt, err); !again {
			return err
		}
		last = err
	}
}

func (p *Pool) invoke(ctx context.Context, pk pick, method string, args, reply any, opts []grpc.CallOption) error {
	c := pk.c
	b := c.b
	b.started.Add(1)
	b.calls.Add(1)
	c.open.Add(1)
	err := c.cc.Invoke(ctx, method, args, reply, opts...)
	c.open.Add(-1)
	b.calls.Add(-1)
	c.release()
	p.finish(b, pk.done, err)
	return err
}

// finish records how a call or stream ended.
func (p *Pool) finish(b *backend, done func(error), err error) {
	if err != nil && p.classify(err) == breaker.Failure {
		b.failures.Add(1)
	}
	if done != nil {
		done(err)
	}
}

func (p *Pool) classify(err error) breaker.Outcome {
	if p.o.breaker != nil && p.o.breaker.Classify != nil {
		return p.o.breaker.Classify(err)
	}
	return breaker.DefaultClassifier(err)
}

// retryAfter reports whether attempt, which ended in err, is retried, after
// waiting its backoff. It is retried only with WithRetry, for a code in the
// policy, within the policy's attempts and the pool's retry budget, and when
// the caller's deadline leaves room for the backoff. It returns the error
// the call ends with when it is not retried: err, or the caller's context
// error when the context ended during the backoff.
func (p *Pool) retryAfter(ctx context.Context, attempt int, err error) (bool, error) {
	pol := p.o.retry
	if err == nil || pol == nil || attempt >= pol.MaxAttempts || ctx.Err() != nil {
		return false, err
	}
	st, ok := status.FromError(err)
	if !ok || !pol.Retryable(st.Code()) || st.Message() == msgClosed {
		return false, err
	}
	d := pol.Backoff(attempt)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return false, err
	}
	if !p.budget.Withdraw() {
		return false, err
	}
	if d <= 0 {
		return true, err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true, err
	case <-ctx.Done():
		return false, status.FromContextError(ctx.Err()).Err()
	case <-p.ctx.Done():
		return false, status.Error(codes.Canceled, msgClosed)
	}
}

// NewStream begins a stream on one of the pool's connections. The stream
// counts as active on its backend until it ends by any route: an error,
// io.EOF, the caller's context, or the pool closing. With WithRetry, a
// stream whose NewStream failed (nothing reached a server) is begun again on
// another backend; once begun it is never retried.
func (p *Pool) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	var tr tried
	if p.o.retry != nil {
		p.budget.Deposit()
	}
	var last error // the error of the last attempt made
	for attempt := 1; ; attempt++ {
		pk, err := p.pick(ctx, method, opts, &tr)
		if err != nil {
			return nil, cmp.Or(last, err) // as in Invoke: nothing to pick fails at once
		}
		cs, err := p.newStream(ctx, pk, desc, method, opts)
		if err == nil {
			return cs, nil
		}
		if err == errStalled {
			attempt-- // placed again, not retried
			continue
		}
		tr.add(pk.c.b)
		var again bool
		if again, err = p.retryAfter(ctx, attempt, err); !again {
			return nil, err
		}
		last = err
	}
}

// stream tracks one stream until gRPC reports its end through
// grpc.OnFinish, which grpc-go calls exactly once on every route.
type stream struct {
	p       *Pool
	c       *conn
	done    func(error)
	ended   atomic.Bool
	cancel  context.CancelFunc // with WithMaxStreamAge
	timer   *time.Timer        // with WithMaxStreamAge
	aged    atomic.Bool        // the max stream age ended it
	stalled atomic.Bool        // NewStream stalled on a full connection
	state   atomic.Int32       // streamInNew, streamOpen (counted in conn.open) or streamEnded
	buf     [4]grpc.CallOption
}

func (p *Pool) newStream(ctx context.Context, pk pick, desc *grpc.StreamDesc, method string, opts []grpc.CallOption) (grpc.ClientStream, error) {
	st := &stream{p: p, c: pk.c, done: pk.done}
	o := append(st.buf[:0], opts...)
	o = append(o, grpc.OnFinish(st.finish))
	b := pk.c.b
	b.started.Add(1)
	b.streams.Add(1)
	c := pk.c
	// Learn the server's stream limit when a connection that carries other
	// calls stops admitting streams (gRPC would queue this one silently).
	// Armed whatever c carries now: streams placed after this one can reach
	// the transport first and take the last slots. The timer checks, when
	// it fires, that other calls are open on c. Once c's limit is known the
	// picker never places a stream beyond it, and nothing is armed.
	armed := p.o.learnStreamLimit > 0 && p.o.maxStreams == 0 && !pk.overflow && c.limit.Load() == 0
	if armed || p.o.maxStreamAge > 0 {
		ctx, st.cancel = context.WithCancel(ctx)
	}
	var stall *time.Timer
	if armed {
		stall = time.AfterFunc(p.o.learnStreamLimit, func() {
			// One counter, read once: active - pending, read as two,
			// undercounts while other stalled streams leave (gRPC runs
			// OnFinish, releasing active, inside NewStream).
			if n := c.open.Load(); n > 0 {
				st.stalled.Store(true)
				p.learnLimit(c, n)
				st.cancel()
			}
		})
	}
	cs, err := c.cc.NewStream(ctx, desc, method, o...)
	if stall != nil && !stall.Stop() && st.stalled.Load() {
		// Headers were never sent while the stream waited for the server's
		// stream quota; nothing the caller sends has gone anywhere yet.
		st.finish(errNotSent)
		return nil, errStalled
	}
	if err != nil {
		st.finish(err) // in case an interceptor failed before gRPC saw the stream
		return nil, err
	}
	st.admit()
	if p.o.maxStreamAge <= 0 {
		return cs, nil
	}
	st.timer = time.AfterFunc(jitter(p.o.maxStreamAge), st.expire)
	return &agedStream{ClientStream: cs, st: st}, nil
}

const (
	streamInNew int32 = iota // in NewStream: not counted in conn.open
	streamOpen               // counted in conn.open
	streamEnded
)

// admit counts the stream in its connection's open streams, unless it
// ended already.
func (st *stream) admit() {
	st.c.open.Add(1)
	if !st.state.CompareAndSwap(streamInNew, streamOpen) {
		st.c.open.Add(-1)
	}
}

func (st *stream) finish(err error) {
	if st.state.Swap(streamEnded) == streamOpen {
		st.c.open.Add(-1)
	}
	if !st.ended.CompareAndSwap(false, true) {
		return
	}
	b := st.c.b
	b.streams.Add(-1)
	st.c.release()
	if st.timer != nil {
		st.timer.Stop()
	}
	if st.cancel != nil {
		st.cancel()
	}
	st.p.finish(b, st.done, err)
}

func (st *stream) expire() {
	st.aged.Store(true)
	st.cancel()
}

// agedStream reports a stream ended by WithMaxStreamAge as
// codes.Unavailable, so callers reopen it.
type agedStream struct {
	grpc.ClientStream
	st *stream
}

func (s *agedStream) fix(err error) error {
	if err != nil && err != io.EOF && s.st.aged.Load() {
		return status.Error(codes.Unavailable, msgStreamMaxAge)
	}
	return err
}

func (s *agedStream) RecvMsg(m any) error { return s.fix(s.ClientStream.RecvMsg(m)) }

func (s *agedStream) Header() (md metadata.MD, err error) {
	md, err = s.ClientStream.Header()
	return md, s.fix(err)
}
