package pool

import (
	"context"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/telemetry"
)

// attempt is one try of a call on one connection, from the pick that
// placed it to end, which settles it. A unary attempt lives on its
// caller's stack; a stream's is part of its stream. It holds no pointer
// to its call, so that a unary call stays on its caller's stack too.
type attempt struct {
	p      *Pool
	method string       // the call's
	pk     core.Result  // the pick: its connection, and its breaker's done
	s      *core.Picker // the picker it was picked from
	kind   telemetry.Kind
	start  telemetry.Stamp // for its duration metric; 0 while metrics are off
	ctx    context.Context // a unary attempt's, for its metrics; nil for a stream's
	fb     *feedback       // PeakEWMA's; nil with other policies
	d      *delivery       // what became of a unary request, when the retry decision needs it

	report core.StreamReport // a stream's report to its backend's breaker
	ended  atomic.Bool       // end has run
}

// begin counts the attempt on its backend as started and in flight.
func (a *attempt) begin() {
	b := a.pk.Conn.Backend
	b.Started.Add(1)
	if a.kind == telemetry.KindStream {
		b.Streams.Add(1)
	} else {
		b.Calls.Add(1)
	}
	a.p.rec.Active(b.Addr(), a.kind, 1)
	a.start = a.p.rec.Start(a.metricsCtx())
}

// metricsCtx is the context of the attempt's metrics: a unary attempt's
// own; none for a stream's, which outlives the call that opened it.
func (a *attempt) metricsCtx() context.Context {
	if a.ctx == nil {
		return context.Background()
	}
	return a.ctx
}

// invoke makes the unary attempt a of c into reply on its connection,
// within ctx, and ends it.
func (a *attempt) invoke(ctx context.Context, c *call, args, reply any) error {
	if c.mc.Retry != nil {
		a.d = &delivery{}
		ctx = context.WithValue(ctx, deliveryKey{}, a.d)
	}
	a.ctx = ctx
	a.begin()
	opts := a.feedback(c.opts)
	err := handle(a.pk.Conn).cc.Invoke(ctx, c.method, args, reply, opts...)
	a.end(err, a.d != nil && a.d.received.Load())
	return err
}

// end settles the attempt, which ended in err: it releases the connection
// (telling the core when that drained it), records the attempt's metrics,
// feeds PeakEWMA (core.Observe), reports to the breaker and counts a
// backend failure (core.Settle, as lb's end does).
// answered: the server had answered, so the caller's own deadline or
// cancellation that ended it says nothing about the backend. end does all
// of that once, whatever route ends the attempt and however many times:
// it reports whether this call was the one that did.
func (a *attempt) end(err error, answered bool) bool {
	if a.ended.Load() || !a.ended.CompareAndSwap(false, true) {
		return false
	}
	p := a.p
	b := a.pk.Conn.Backend
	addr := b.Addr()
	done := a.pk.Done
	if a.kind == telemetry.KindStream {
		if !answered {
			a.fb.done(err) // a stream's feedback is a failure before its first answer
		}
		var first bool
		if done, first = a.report.Take(); !first && err != nil && b.Breaker != nil {
			// The breaker heard of the stream already; a later backend
			// failure is reported as a call of its own.
			done, _ = b.Breaker.Allow()
			done = p.probeDone(b, done)
		}
	} else {
		a.fb.done(err)
	}
	p.rec.AttemptDoneSince(a.metricsCtx(), a.method, status.Code(err), addr, p.locality(b), a.start)
	p.rec.Active(addr, a.kind, -1)
	if a.kind == telemetry.KindStream {
		b.Streams.Add(-1) // after the records: see below
	} else {
		b.Calls.Add(-1)
	}
	a.release()
	if notSent(err) {
		err = core.ErrNotSent
	}
	err = core.Settle(b, err, answered, p.o.classify)
	if done != nil {
		done(err)
	}
	if b.LastCallEnded() {
		// The last attempt on a removed backend releases its metrics label.
		p.rec.ForgetBackend(addr)
	}
	return true
}

// release gives the attempt's connection back and tells the core when
// that drained it. unpick, for an attempt that was never begun, also gives
// its breaker's done back.
func (a *attempt) release() {
	c := a.pk.Conn
	if c.Release() {
		p := a.p
		p.events.push(func(now time.Time) { p.core.Drained(now, c) })
	}
}

// unpick gives back a pick no request was sent on and that was never
// begun.
func (a *attempt) unpick() {
	a.release()
	if a.pk.Done != nil {
		a.pk.Done(core.ErrNotSent)
	}
}

// classify is the pool's breaker classifier: WithBreaker's, or
// breaker.DefaultClassifier.
func (o *options) classify(err error) breaker.Outcome {
	if o.breaker != nil && o.breaker.Classify != nil {
		return o.breaker.Classify(err)
	}
	return breaker.DefaultClassifier(err)
}
