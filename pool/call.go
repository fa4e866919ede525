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
	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/telemetry"
	"github.com/grpcpool/grpcpool/retry"
)

// splitOnFinish takes the caller's grpc.OnFinish options out of opts: the
// pool runs them once per logical call, not once per attempt.
func splitOnFinish(opts []grpc.CallOption) ([]grpc.CallOption, []func(error)) {
	n := 0
	for _, o := range opts {
		if _, ok := o.(grpc.OnFinishCallOption); ok {
			n++
		}
	}
	if n == 0 {
		return opts, nil
	}
	rest := make([]grpc.CallOption, 0, len(opts)-n)
	fs := make([]func(error), 0, n)
	for _, o := range opts {
		if f, ok := o.(grpc.OnFinishCallOption); ok {
			fs = append(fs, f.OnFinish)
		} else {
			rest = append(rest, o)
		}
	}
	return rest, fs
}

func runFinish(fs []func(error), err error) {
	for _, f := range fs {
		f(err)
	}
}

// Invoke performs a unary RPC on one of the pool's connections and returns
// after the response is received into reply. With WithRetry, a failed
// attempt is retried on another backend under the retry policy.
func (p *Pool) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return p.unary(ctx, method, args, reply, nil, opts...)
}

// logicalInvoke is Invoke inside the pool-level interceptors: a
// grpc.UnaryInvoker.
func (p *Pool) logicalInvoke(ctx context.Context, method string, args, reply any, _ *grpc.ClientConn, opts ...grpc.CallOption) error {
	opts, fin := splitOnFinish(opts)
	start := time.Now()
	err := p.invokeCall(ctx, method, args, reply, opts)
	p.rec.CallDone(ctx, method, status.Code(err), time.Since(start))
	runFinish(fin, err)
	return err
}

func (p *Pool) invokeCall(ctx context.Context, method string, args, reply any, opts []grpc.CallOption) error {
	mc := p.o.methods.ForCall(method, opts)
	if mc.Hedging != nil {
		return p.invokeHedged(ctx, mc, method, args, reply, opts)
	}
	pol := mc.Retry
	if pol != nil {
		p.budget.Deposit()
	}
	var tr core.Tried
	var last error // the error of the last attempt made
	for n := 1; ; {
		pk, s, err := p.pick(ctx, method, opts, &tr)
		if err != nil {
			// Nothing can take the call now (every breaker open, nothing
			// ready): fail at once. A backoff would not change that, and
			// would spend the retry budget.
			return cmp.Or(last, err)
		}
		var a *attempt
		actx := ctx
		if pol != nil {
			a = &attempt{}
			actx = context.WithValue(ctx, attemptKey{}, a)
		}
		err = p.invoke(actx, pk, method, args, reply, opts, a)
		if err == nil {
			pk.Conn.Backend.Ended.Add(1)
			return nil
		}
		if notSent(err) && ctx.Err() == nil {
			// The connection left READY under the pick: the request never
			// left the client. Place it again, on the next picker.
			awaitChange(ctx, s)
			continue
		}
		tr.Add(pk.Conn.Backend)
		var again bool
		if again, err = p.retryAfter(ctx, method, pol, n, err, mc.Idempotent, a); !again {
			pk.Conn.Backend.Ended.Add(1)
			return err
		}
		last = err
		n++
	}
}

func (p *Pool) invoke(ctx context.Context, pk core.Result, method string, args, reply any, opts []grpc.CallOption, a *attempt) error {
	c := pk.Conn
	b := c.Backend
	b.Started.Add(1)
	b.Calls.Add(1)
	addr := b.Addr()
	p.rec.Active(addr, telemetry.KindUnary, 1)
	start := time.Now()
	fb, opts := p.feedback(b, opts)
	err := handle(c).cc.Invoke(ctx, method, args, reply, opts...)
	fb.done(err)
	p.rec.AttemptDoneIn(ctx, method, status.Code(err), addr, p.locality(b), time.Since(start))
	p.rec.Active(addr, telemetry.KindUnary, -1)
	b.Calls.Add(-1)
	p.release(c)
	p.finish(b, pk.Done, err, a != nil && a.received.Load())
	p.ended(b)
	return err
}

// ended is called when an attempt on b has ended and everything about it
// is recorded: the last one on a removed backend releases its metrics
// label.
func (p *Pool) ended(b *core.Backend) {
	if b.LastCallEnded() {
		p.rec.ForgetBackend(b.Addr())
	}
}

// release ends a call on c and tells the core when that drained it.
func (p *Pool) release(c *core.Conn) {
	if c.Release() {
		p.events.push(func(now time.Time) { p.core.Drained(now, c) })
	}
}

// finish records how a call or stream ended. answered: the server had
// answered it, so the caller's own deadline or cancellation that ended it
// says nothing about the backend.
func (p *Pool) finish(b *core.Backend, done func(error), err error, answered bool) {
	switch {
	case err == nil:
	case notSent(err), answered && callerEnded(err):
		err = core.ErrNotSent
	case p.classify(err) == breaker.Failure:
		b.Failures.Add(1)
	}
	if done != nil {
		done(err)
	}
}

func callerEnded(err error) bool {
	c := status.Code(err)
	return c == codes.DeadlineExceeded || c == codes.Canceled
}

func (p *Pool) classify(err error) breaker.Outcome {
	if p.o.breaker != nil && p.o.breaker.Classify != nil {
		return p.o.breaker.Classify(err)
	}
	return breaker.DefaultClassifier(err)
}

// retryAfter reports whether attempt, which ended in err, is retried, after
// waiting its backoff. It is retried only with WithRetry, for a code in the
// policy, within the policy's attempts and the pool's retry budget, when
// the caller's deadline leaves room for the backoff, and — when the request
// reached the server and no status came back from it (the connection broke
// under it, before or after response headers) — only for methods marked
// idempotent, since the server may have acted on it. It returns the error the call ends with when it is not
// retried: err, or the caller's context error when the context ended during
// the backoff.
func (p *Pool) retryAfter(ctx context.Context, method string, pol *retry.Policy, attempt int, err error, idempotent bool, a *attempt) (bool, error) {
	if err == nil || pol == nil || attempt >= pol.MaxAttempts || ctx.Err() != nil {
		return false, err
	}
	st, ok := status.FromError(err)
	if !ok || !pol.Retryable(st.Code()) || st.Message() == msgClosed {
		return false, err
	}
	if a != nil && a.sent.Load() && !a.status.Load() && !idempotent {
		return false, err
	}
	d := pol.Backoff(attempt)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return false, err
	}
	if !p.budget.Withdraw() {
		p.rec.RetryRefused(ctx, method)
		return false, err
	}
	p.rec.RetryAttempt(ctx, method, telemetry.Retry)
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
	return p.streamer(ctx, desc, nil, method, opts...)
}

// logicalStream is NewStream inside the pool-level interceptors: a
// grpc.Streamer.
func (p *Pool) logicalStream(ctx context.Context, desc *grpc.StreamDesc, _ *grpc.ClientConn, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	opts, fin := splitOnFinish(opts)
	var tr core.Tried
	pol := p.o.methods.ForCall(method, opts).Retry
	if pol != nil {
		p.budget.Deposit()
	}
	sc := stallCall{id: p.calls.Add(1), start: time.Now()}
	var last error // the error of the last attempt made
	for attempt := 1; ; {
		pk, s, err := p.pick(ctx, method, opts, &tr)
		if err != nil {
			err = cmp.Or(last, err) // as in Invoke: nothing to pick fails at once
			p.rec.CallDone(ctx, method, status.Code(err), time.Since(sc.start))
			runFinish(fin, err)
			return nil, err
		}
		cs, err := p.newStream(ctx, pk, desc, method, opts, fin, &sc)
		if err == nil {
			pk.Conn.Backend.Ended.Add(1)
			return cs, nil
		}
		if (err == errStalled || notSent(err)) && ctx.Err() == nil {
			if err == errStalled {
				sc.stalls++
			}
			// Let the core apply what the attempt taught (a learned limit,
			// a connection no longer READY) before placing it again.
			awaitChange(ctx, s)
			continue // placed again, not retried
		}
		tr.Add(pk.Conn.Backend)
		var again bool
		if again, err = p.retryAfter(ctx, method, pol, attempt, err, false, nil); !again {
			pk.Conn.Backend.Ended.Add(1)
			p.rec.CallDone(ctx, method, status.Code(err), time.Since(sc.start))
			runFinish(fin, err)
			return nil, err
		}
		last = err
		attempt++
	}
}

// stream is the ClientStream the pool returns: it tracks one stream until
// gRPC reports its end through grpc.OnFinish, which grpc-go calls exactly
// once on every route.
type stream struct {
	grpc.ClientStream
	p         *Pool
	c         *core.Conn
	report    core.StreamReport // to the backend's breaker
	answered  atomic.Bool       // the server sent headers or a message
	ended     atomic.Bool
	state     atomic.Int32
	cancel    context.CancelFunc // with WithMaxStreamAge or stall learning
	timer     *time.Timer        // with WithMaxStreamAge; set before gRPC has the stream
	aged      atomic.Bool        // the max stream age ended it
	stalledAt atomic.Int64       // the streams open on its connection when the stall timer gave its NewStream up; 0: it did not
	method    string
	start     time.Time // the attempt's
	callStart time.Time // the logical call's

	fin     []func(error) // the caller's OnFinish, run once when final
	final   atomic.Bool   // the caller holds this stream
	finRan  atomic.Bool
	endErr  atomic.Pointer[error]
	optsBuf [4]grpc.CallOption
	fb      *feedback // PeakEWMA: a failure before the first answer
}

func (p *Pool) newStream(ctx context.Context, pk core.Result, desc *grpc.StreamDesc, method string, opts []grpc.CallOption, fin []func(error), sc *stallCall) (grpc.ClientStream, error) {
	c := pk.Conn
	st := &stream{p: p, c: c, fin: fin, method: method, start: time.Now(), callStart: sc.start, fb: p.streamFeedback(c.Backend)}
	st.report.Start(pk)
	o := append(st.optsBuf[:0], opts...)
	o = append(o, grpc.OnFinish(st.finish))
	b := c.Backend
	b.Started.Add(1)
	b.Streams.Add(1)
	p.rec.Active(b.Addr(), telemetry.KindStream, 1)
	armed := p.stallArmed(pk)
	if armed || p.o.maxStreamAge > 0 {
		ctx, st.cancel = context.WithCancel(ctx)
	}
	var stall *time.Timer
	if armed {
		ctx, stall = p.armStall(ctx, st, sc)
	}
	if p.o.maxStreamAge > 0 {
		// Armed before gRPC has the stream: gRPC may finish it on a
		// goroutine of its own before NewStream returns, and finish must
		// find the timer to stop it.
		st.timer = time.AfterFunc(core.Jitter(p.o.maxStreamAge), st.expire)
	}
	cs, err := handle(c).cc.NewStream(ctx, desc, method, o...)
	if stall != nil {
		stall.Stop()
	}
	c.StreamOpened()
	if !st.state.CompareAndSwap(streamInNew, streamOpen) && !st.state.CompareAndSwap(streamAdmitted, streamOpen) {
		c.StreamEnded() // not counted: it stalled, or already ended
		if n := st.stalledAt.Load(); n > 0 {
			return nil, p.stalled(st, n, err, sc)
		}
	}
	if err != nil {
		st.finish(err) // in case an interceptor failed before gRPC saw the stream
		return nil, st.fix(err)
	}
	st.ClientStream = cs
	st.final.Store(true)
	if st.ended.Load() {
		st.runFinish()
	}
	return st, nil
}

func (st *stream) finish(err error) {
	if st.state.Swap(streamEnded) == streamOpen {
		st.c.StreamEnded()
	}
	if !st.ended.CompareAndSwap(false, true) {
		return
	}
	st.endErr.Store(&err)
	b := st.c.Backend
	st.p.rec.Active(b.Addr(), telemetry.KindStream, -1)
	st.p.rec.AttemptDoneIn(context.Background(), st.method, status.Code(err), b.Addr(), st.p.locality(b), time.Since(st.start))
	b.Streams.Add(-1) // after the records: see Pool.ended
	if st.final.Load() {
		st.p.rec.CallDone(context.Background(), st.method, status.Code(err), time.Since(st.callStart))
	}
	st.p.release(st.c)
	if st.timer != nil {
		st.timer.Stop()
	}
	if st.cancel != nil {
		st.cancel()
	}
	answered := st.answered.Load()
	if !answered {
		st.fb.done(err)
	}
	done, first := st.report.Take()
	if !first && err != nil && b.Breaker != nil {
		// The breaker heard of the stream already; a later backend
		// failure is reported as a call of its own.
		done, _ = b.Breaker.Allow()
	}
	st.p.finish(b, done, err, answered)
	st.p.ended(b)
	if st.final.Load() {
		st.runFinish()
	}
}

func (st *stream) runFinish() {
	if len(st.fin) == 0 || !st.finRan.CompareAndSwap(false, true) {
		return
	}
	var err error
	if e := st.endErr.Load(); e != nil {
		err = *e
	}
	if st.aged.Load() && err != nil {
		err = status.Error(codes.Unavailable, msgStreamMaxAge)
	}
	runFinish(st.fin, err)
}

// answer records that the server answered the stream, and tells the
// breaker once that the backend is healthy, so a long-lived stream never
// holds a half-open breaker.
func (st *stream) answer() {
	if st.answered.Load() || !st.answered.CompareAndSwap(false, true) {
		return
	}
	st.report.Answered()
}

func (st *stream) expire() {
	st.aged.Store(true)
	st.cancel()
}

// fix reports a stream ended by WithMaxStreamAge as codes.Unavailable, so
// callers reopen it.
func (st *stream) fix(err error) error {
	if err != nil && err != io.EOF && st.aged.Load() {
		return status.Error(codes.Unavailable, msgStreamMaxAge)
	}
	return err
}

func (st *stream) RecvMsg(m any) error {
	err := st.ClientStream.RecvMsg(m)
	if err == nil {
		st.answer()
	}
	return st.fix(err)
}

func (st *stream) SendMsg(m any) error { return st.fix(st.ClientStream.SendMsg(m)) }

func (st *stream) Header() (metadata.MD, error) {
	md, err := st.ClientStream.Header()
	if err == nil {
		st.answer()
	}
	return md, st.fix(err)
}
