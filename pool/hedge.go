package pool

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/grpcpool/grpcpool/retry"
)

// errNoHedgeTarget is what a hedgeCall's attempt returns, at once and
// without sending anything, when attempt n > 1 finds no backend the call
// has not tried yet: the call makes no more hedges, and this is never the
// call's error.
var errNoHedgeTarget = errors.New("grpcpool: no untried backend to hedge to")

// hedgeCall is one hedged unary call: what the pool's Invoke gives the
// hedging engine. The engine knows nothing of backends or connections;
// attempt does.
type hedgeCall struct {
	// mc is the method's configuration; mc.Hedging nil means one attempt.
	mc retry.MethodConfig
	// budget is the pool's retry budget; every hedge withdraws from it.
	// Nil means no hedge at all (one attempt).
	budget *retry.Budget
	// attempt makes attempt n (1 for the first) of the call into reply,
	// on a backend the call has not tried yet, and returns its error. It
	// is called from goroutines of their own, up to Hedging.MaxAttempts at
	// once, so whatever it shares between attempts (the backends tried)
	// must be safe for concurrent use. It must return soon after ctx ends
	// and not touch reply once it has returned. For n > 1 with no untried
	// backend it returns errNoHedgeTarget.
	attempt func(ctx context.Context, n int, reply any) error
	// onHedge, if not nil, is told of every hedge: sent, or refused by
	// the budget (for the grpcpool.retry.attempts and .refused counters).
	onHedge func(refused bool)
}

// hedgeResult is how one attempt ended.
type hedgeResult struct {
	n     int
	reply any
	err   error
	took  time.Duration
}

// hedge makes the call c, hedged: attempt 1 at once into reply; each time
// the method's hedging delay passes without an answer, or an attempt
// fails with a non-fatal code, one more attempt into a new reply of the
// same type, as long as Hedging.MaxAttempts, the budget (one Withdraw per
// hedge) and the backends allow. The first success wins: the other
// attempts are cancelled, hedge waits for them to return, and the
// winner's reply is copied into reply (proto.Reset, then proto.Merge)
// unless it was attempt 1's. A fatal failure ends the call with its error
// and cancels the others; when every attempt failed non-fatally, the call
// ends with the last error; when ctx ends first, with ctx's status.
//
// Without hedging for the method, without a budget, or when reply is not
// a proto.Message (a reply of another type cannot be made anew and
// copied), hedge makes one attempt, in the caller's goroutine.
//
// For an adaptive delay hedge records the latency of attempt 1: when it
// succeeded, or when a hedge won while it was still running (its time so
// far); not when it failed.
func hedge(ctx context.Context, c hedgeCall, reply any) error {
	h := c.mc.Hedging
	pm, ok := reply.(proto.Message)
	if h == nil || h.MaxAttempts < 2 || c.budget == nil || !ok {
		start := time.Now()
		err := c.attempt(ctx, 1, reply)
		if err == nil {
			c.mc.ObserveLatency(time.Since(start))
		}
		return err
	}

	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan hedgeResult, h.MaxAttempts) // never blocks a sender
	run := func(n int, r any) {
		go func() {
			t0 := time.Now()
			err := c.attempt(actx, n, r)
			results <- hedgeResult{n: n, reply: r, err: err, took: time.Since(t0)}
		}()
	}
	start := time.Now()
	run(1, reply)
	sent, inFlight := 1, 1
	firstDone := false // attempt 1 has returned
	canHedge := true   // the budget has not refused, a backend was left
	delay := c.mc.HedgingDelay()
	timer := time.NewTimer(delay)
	defer timer.Stop()

	hedgeNow := func() {
		if !canHedge || sent >= h.MaxAttempts || actx.Err() != nil {
			return
		}
		if !c.budget.Withdraw() {
			canHedge = false
			if c.onHedge != nil {
				c.onHedge(true)
			}
			return
		}
		if c.onHedge != nil {
			c.onHedge(false)
		}
		sent++
		inFlight++
		run(sent, pm.ProtoReflect().New().Interface())
		timer.Reset(delay)
	}

	var win *hedgeResult
	var last error
loop:
	for inFlight > 0 {
		select {
		case r := <-results:
			inFlight--
			if r.n == 1 {
				firstDone = true
			}
			if r.err == nil {
				win = &r
				break loop
			}
			if r.n > 1 && errors.Is(r.err, errNoHedgeTarget) {
				canHedge = false
				continue
			}
			last = r.err
			if !h.NonFatal(status.Code(r.err)) {
				break loop
			}
			hedgeNow()
		case <-timer.C:
			hedgeNow()
		case <-actx.Done():
			last = status.FromContextError(ctx.Err()).Err()
			break loop
		}
	}
	switch {
	case win != nil && win.n == 1:
		c.mc.ObserveLatency(win.took)
	case win != nil && !firstDone:
		c.mc.ObserveLatency(time.Since(start))
	}

	// Cancel the attempts still in flight and wait for them: they return
	// soon once cancelled, and attempt 1 writes into reply.
	cancel()
	for ; inFlight > 0; inFlight-- {
		<-results
	}
	if win == nil {
		if last == nil { // every hedge found no backend: cannot happen, attempt 1 always reports
			last = status.Error(codes.Unavailable, "grpcpool: hedged call made no attempt")
		}
		return last
	}
	if win.n != 1 {
		proto.Reset(pm)
		proto.Merge(pm, win.reply.(proto.Message))
	}
	return nil
}
