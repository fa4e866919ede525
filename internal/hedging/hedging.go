// Package hedging is the hedging engine of the pool's unary calls: it
// sends the first attempt of a call, a hedge each time the method's delay
// passes without an answer (or an attempt fails with a non-fatal code),
// within the method's attempts and the retry budget, takes the first
// success and cancels the rest. It knows nothing of backends or
// connections: a Call's Attempt places each attempt.
package hedging

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/retry"
)

// ErrNotSent is what a Call's attempt n > 1 returns, at once
// and without sending anything, when it finds no backend the call has not
// tried yet or the budget refuses it: the call makes no more hedges, and
// this is never the call's error.
var ErrNotSent = errors.New("grpcpool: hedge not sent: no untried backend, or the retry budget refused it")

// Call is one hedged unary call: what the pool's Invoke gives the
// hedging engine. The engine knows nothing of backends or connections;
// Attempt does.
type Call struct {
	// Config is the method's configuration; Config.Hedging nil means one
	// attempt.
	Config retry.MethodConfig
	// Budget is the pool's retry budget; every hedge sent withdraws from
	// it. Nil means no hedge at all (one attempt).
	Budget *retry.Budget
	// Attempt makes attempt n (1 for the first) of the call into reply,
	// on a backend the call has not tried yet, and returns its error. It
	// is called from goroutines of their own, up to Hedging.MaxAttempts
	// (never more than retry.MaxHedgingAttempts) at once, so whatever it shares between attempts (the backends tried)
	// must be safe for concurrent use. It must return soon after ctx ends
	// and not touch reply once it has returned. For n > 1 (admit is nil
	// for attempt 1) it calls admit once it has found a backend and
	// before it sends anything: when admit returns false (the budget
	// refused the hedge, or the call has ended), or when it finds no
	// untried backend, it sends nothing and returns ErrNotSent. Any
	// attempt, attempt 1 included, may also return ErrNotSent when it sent
	// nothing and another attempt of the call carries it on the backend
	// it would have used.
	Attempt func(ctx context.Context, n int, reply any, admit func() bool) error
	// OnHedge, if not nil, is told of every hedge admitted: sent, or
	// refused by the budget (for the grpcpool.retry.attempts and .refused
	// counters). A hedge that found no backend is neither.
	OnHedge func(refused bool)
	// End, if not nil, is told once, after every attempt has returned,
	// which attempt ended the call: the one whose result the call takes
	// (its success, its fatal failure, or the last non-fatal failure),
	// or, when the caller's context ended the call, the last attempt to
	// return. Attempts that returned ErrNotSent never end a call; when
	// no attempt ended it (none was sent), End is not called. An attempt
	// cancelled because another one ended the call never ends it, even
	// if its answer arrived meanwhile.
	End func(n int)
}

// result is how one attempt ended.
type result struct {
	n     int
	reply any
	err   error
	took  time.Duration
}

// Do makes the call c, hedged: attempt 1 at once into reply; each time
// the method's hedging delay passes without an answer, or an attempt
// fails with a non-fatal code, one more attempt into a new reply of the
// same type, as long as Hedging.MaxAttempts, the budget (one Withdraw per
// hedge sent, none for a hedge that found no backend) and the backends
// allow. The first success wins: the other
// attempts are cancelled, Do waits for them to return, and the
// winner's reply is copied into reply (see replyType) unless it was
// attempt 1's. A fatal failure ends the call with its error and cancels
// the others; when every attempt failed non-fatally, the call ends with
// the last error; when ctx ends first, with ctx's status. A reply of any
// type can be hedged as long as it is a non-nil pointer; any other reply
// fails the call at once with codes.Internal.
//
// Without hedging for the method or without a budget, Do makes one
// attempt, in the caller's goroutine.
//
// For an adaptive delay Do records the latency of attempt 1: when it
// succeeded, or when a hedge won while it was still running (its time so
// far); not when it failed. Before it returns, Do tells c.End which
// attempt ended the call.
func Do(ctx context.Context, c Call, reply any) error {
	h := c.Config.Hedging
	if h == nil || h.MaxAttempts < 2 || c.Budget == nil {
		start := time.Now()
		err := c.Attempt(ctx, 1, reply, nil)
		if err == nil {
			c.Config.ObserveLatency(time.Since(start))
		}
		if !errors.Is(err, ErrNotSent) {
			c.ended(1)
		}
		return err
	}
	// Each hedge's reply is made from reply's type, read before attempt 1
	// may decode into reply: never from reply itself.
	rt, err := replyTypeOf(reply)
	if err != nil {
		return err
	}

	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	attempts := min(h.MaxAttempts, retry.MaxHedgingAttempts)
	hr := &run{
		c:       c,
		h:       h,
		ctx:     actx,
		results: make(chan result, attempts), // never blocks a sender
		delay:   c.Config.HedgingDelay(),
		max:     attempts,
	}
	hr.timer = time.NewTimer(hr.delay)
	defer hr.timer.Stop()
	start := time.Now()
	hr.start(1, reply)

	var win result
	won, firstDone := false, false // firstDone: attempt 1 has returned
	var last error
	end, ctxEnded := 0, false // end: the attempt that ends the call, 0 while none
loop:
	for hr.inFlight > 0 {
		select {
		case r := <-hr.results:
			hr.inFlight--
			if r.n == 1 {
				firstDone = true
			}
			if r.err == nil {
				win, won, end = r, true, r.n
				break loop
			}
			if errors.Is(r.err, ErrNotSent) {
				// A hedge found no backend: none is left to hedge on.
				// Attempt 1 is not sent only when another attempt took its
				// backend, and carries the call.
				hr.stopped = hr.stopped || r.n > 1
				continue
			}
			last, end = r.err, r.n
			if !h.NonFatal(status.Code(r.err)) {
				break loop
			}
			hr.hedge(rt)
		case <-hr.timer.C:
			hr.hedge(rt)
		case <-actx.Done():
			last, ctxEnded = status.FromContextError(ctx.Err()).Err(), true
			break loop
		}
	}
	switch {
	case won && win.n == 1:
		c.Config.ObserveLatency(win.took)
	case won && !firstDone:
		c.Config.ObserveLatency(time.Since(start))
	}

	// Cancel the attempts still in flight and wait for them: they return
	// soon once cancelled, and attempt 1 writes into reply.
	cancel()
	for ; hr.inFlight > 0; hr.inFlight-- {
		if r := <-hr.results; ctxEnded && !errors.Is(r.err, ErrNotSent) {
			end = r.n
		}
	}
	if end > 0 {
		c.ended(end)
	}
	if !won {
		if last == nil { // every hedge found no backend: cannot happen, attempt 1 always reports
			last = status.Error(codes.Unavailable, "grpcpool: hedged call made no attempt")
		}
		return last
	}
	if win.n != 1 {
		rt.copy(reply, win.reply)
	}
	return nil
}

// ended tells c.End, if set, that attempt n ended the call.
func (c Call) ended(n int) {
	if c.End != nil {
		c.End(n)
	}
}

// run is the state of one hedged call, owned by hedge's goroutine
// (the attempts' goroutines only send on results).
type run struct {
	c       Call
	h       *retry.Hedging
	ctx     context.Context // the attempts'; cancelled when the call ends
	results chan result
	delay   time.Duration
	timer   *time.Timer
	max     int // attempts at most: h.MaxAttempts, capped at retry.MaxHedgingAttempts

	sent, inFlight int
	stopped        bool        // a hedge was not sent: no backend was left, or the budget refused
	refused        atomic.Bool // the budget refused a hedge (set by admit, in an attempt's goroutine)
}

// start runs attempt n into r in a goroutine of its own.
func (hr *run) start(n int, r any) {
	hr.sent++
	hr.inFlight++
	go hr.run(n, r)
}

func (hr *run) run(n int, r any) {
	var admit func() bool
	if n > 1 {
		admit = hr.admit
	}
	t0 := time.Now()
	err := hr.c.Attempt(hr.ctx, n, r, admit)
	hr.results <- result{n: n, reply: r, err: err, took: time.Since(t0)}
}

// hedge starts the next hedge, into a new reply of type rt, if attempts,
// the budget and the call's context allow, and restarts the delay. The
// hedge takes its share of the budget only once it has found a backend
// (see admit).
func (hr *run) hedge(rt replyType) {
	if hr.stopped || hr.refused.Load() || hr.sent >= hr.max || hr.ctx.Err() != nil {
		return
	}
	hr.start(hr.sent+1, rt.new())
	hr.timer.Reset(hr.delay)
}

// admit is what a hedge calls once it has found a backend, before it
// sends anything: it withdraws the hedge from the budget and counts it.
// It returns false, withdrawing and counting nothing, when the call has
// ended meanwhile. It runs in the hedge's goroutine.
func (hr *run) admit() bool {
	if hr.ctx.Err() != nil {
		return false
	}
	ok := hr.c.Budget.Withdraw()
	if hr.c.OnHedge != nil {
		hr.c.OnHedge(!ok)
	}
	if !ok {
		hr.refused.Store(true)
	}
	return ok
}
