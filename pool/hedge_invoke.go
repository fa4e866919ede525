package pool

import (
	"context"
	"sync"

	"github.com/grpcpool/grpcpool/internal/hedging"
	"github.com/grpcpool/grpcpool/internal/telemetry"
)

// hedgedCall is a unary call of a hedged method: the hedging engine runs
// its attempts in goroutines of their own, which share the backends the
// call tried under mu.
type hedgedCall struct {
	call
	mu      sync.Mutex // guards call.tried and the fields below
	args    any
	placed  int           // attempts whose first pick has ended
	placedC chan struct{} // closed when placed grows; nil: nobody waits
}

// hedged makes the unary call c, of a hedged method (c.mc.Hedging not
// nil), through the hedging engine: each attempt picks a backend the call
// has not tried, and a hedge that finds none is not sent. It is one
// logical call: it deposits into the budget once, and its caller ends it
// (call.end) once. c itself is not kept: the call's attempts share a copy.
func hedged(c *call, args, reply any) error {
	h := &hedgedCall{call: *c, args: args}
	p := h.p
	p.caller.budget.Deposit()
	return hedging.Do(h.ctx, hedging.Call{
		Config:  h.mc,
		Budget:  p.caller.budget,
		Attempt: h.attempt,
		OnHedge: func(refused bool) {
			if refused {
				p.rec.RetryRefused(h.ctx, h.method)
			} else {
				p.rec.RetryAttempt(h.ctx, h.method, telemetry.Hedge)
			}
		},
	}, reply)
}

// attempt makes attempt n of the hedged call into reply, within ctx; see
// hedging.Call.Attempt.
func (h *hedgedCall) attempt(ctx context.Context, n int, reply any, admit func() bool) error {
	if err := h.awaitTurn(ctx, n); err != nil {
		return hedging.ErrNotSent
	}
	for first := true; ; first = false {
		var a attempt
		err := h.next(ctx, n, !first, &a)
		if first {
			h.picked()
		}
		if err != nil {
			return err
		}
		if admit != nil {
			if !admit() {
				a.unpick()
				return hedging.ErrNotSent
			}
			admit = nil // a hedge placed again is not admitted again
		}
		err = a.invoke(ctx, &h.call, h.args, reply)
		b := a.pk.Conn.Backend
		if err == nil {
			b.Ended.Add(1) // the attempt that answered ends the call
		}
		if notSent(err) && ctx.Err() == nil {
			// The connection left READY under the pick: nothing was
			// sent, so the call has not tried the backend (another of
			// its connections may take the attempt). Place the attempt
			// again, on the next picker.
			h.mu.Lock()
			h.tried.Remove(b)
			h.mu.Unlock()
			awaitChange(ctx, a.s)
			continue
		}
		return err
	}
}

// next picks the connection of attempt n into a: one of a backend the
// call has not tried. A hedge (n > 1) that finds none is not sent
// (hedging.ErrNotSent): it would only add load where the call already
// waits. Nor is an attempt placed again (again) whose backend another of
// the call's attempts took meanwhile: that attempt carries the call there.
func (h *hedgedCall) next(ctx context.Context, n int, again bool, a *attempt) error {
	// The pick may wait (for a growth, or for a backend with
	// grpc.WaitForReady): it is made on a copy of tried, so that the
	// call's other attempts can pick meanwhile.
	h.mu.Lock()
	seen := h.tried
	h.mu.Unlock()
	pk, s, err := h.pick(ctx, &seen)
	h.mu.Lock()
	*a = attempt{p: h.p, method: h.method, pk: pk, s: s, kind: telemetry.KindUnary}
	if err == nil && (n > 1 || again) && h.tried.Has(pk.Conn.Backend) {
		a.unpick()
		err = hedging.ErrNotSent
	}
	if err == nil {
		h.tried.Add(pk.Conn.Backend)
	}
	h.mu.Unlock()
	if err != nil && n > 1 {
		return hedging.ErrNotSent
	}
	return err
}

// awaitTurn waits until the call's attempts before n have made their
// first pick, so that a hedge never picks a backend an earlier attempt is
// about to take (its timer may fire before the first attempt's goroutine
// has picked). Attempt 1 never waits.
func (h *hedgedCall) awaitTurn(ctx context.Context, n int) error {
	for {
		h.mu.Lock()
		if h.placed >= n-1 {
			h.mu.Unlock()
			return nil
		}
		if h.placedC == nil {
			h.placedC = make(chan struct{})
		}
		c := h.placedC
		h.mu.Unlock()
		select {
		case <-c:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// picked records that an attempt's first pick has ended, placed or not,
// and wakes the hedges waiting for it.
func (h *hedgedCall) picked() {
	h.mu.Lock()
	h.placed++
	if h.placedC != nil {
		close(h.placedC)
		h.placedC = nil
	}
	h.mu.Unlock()
}
