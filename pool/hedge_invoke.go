package pool

import (
	"context"
	"sync"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/hedging"
	"github.com/grpcpool/grpcpool/internal/telemetry"
	"github.com/grpcpool/grpcpool/retry"
)

// hedgedCall is a unary call of a hedged method: the hedging engine runs
// its attempts in goroutines of their own, each a call of its own over
// the same next and after as every call (see call.hedge), and they share
// the backends the call tried under mu.
type hedgedCall struct {
	call // what its attempts copy: not changed once they run
	args any

	// ends holds, for each attempt, the backend it ended on, for the
	// engine's choice of the one that ends the call (end). Each attempt
	// writes its own; end reads them once every attempt has returned.
	ends [retry.MaxHedgingAttempts]*core.Backend

	mu      sync.Mutex    // guards the fields below
	claimed core.Tried    // the backends the call's attempts took
	placed  int           // attempts whose first pick has ended
	placedC chan struct{} // closed when placed grows; nil: nobody waits
}

// hedged makes the unary call c, of a hedged method (c.mc.Hedging not
// nil), through the hedging engine: each attempt picks a backend the call
// has not tried, and a hedge that finds none is not sent. It is one
// logical call: it deposits into the budget once, the backend of the
// attempt the engine ends it with counts it, and its caller ends it
// (call.end) once. c itself is not kept: the hedged call holds a copy,
// which each of its attempts copies.
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
		End: h.end,
	}, reply)
}

// attempt makes attempt n of the hedged call into reply, within ctx; see
// hedging.Call.Attempt. It is the call's attempt loop (next, invoke,
// after) run as a call of its own: the attempt's context and number, and
// the backends the call's attempts claimed. A hedge (n > 1) that finds
// no backend, or that the engine does not admit, is not sent
// (hedging.ErrNotSent): it would only add load where the call already
// waits.
func (h *hedgedCall) attempt(ctx context.Context, n int, reply any, admit func() bool) error {
	if err := h.awaitTurn(ctx, n); err != nil {
		return hedging.ErrNotSent
	}
	c := h.call
	c.ctx, c.n, c.hedge = ctx, n, h
	for first := true; ; first = false {
		var a attempt
		err := c.next(&a, telemetry.KindUnary)
		if first {
			h.picked()
		}
		if err != nil {
			if n > 1 {
				return hedging.ErrNotSent
			}
			return err
		}
		if admit != nil {
			if !admit() {
				// Nothing is sent: the backend is left to the call's
				// other attempts.
				c.unclaim(a.pk.Conn.Backend)
				a.unpick()
				return hedging.ErrNotSent
			}
			admit = nil // a hedge placed again is not admitted again
		}
		err = a.invoke(ctx, &c, h.args, reply)
		if again, err := c.after(&a, err); !again {
			return err
		}
	}
}

// end counts the call on the backend of attempt n, the one the engine
// ended it with (hedging.Call.End). h.call is the call itself, not one
// of its attempts, so ends counts.
func (h *hedgedCall) end(n int) {
	if b := h.ends[n-1]; b != nil {
		h.call.ends(b)
	}
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

// claim records b as taken by one of the call's attempts, unless another
// one took it first (false).
func (h *hedgedCall) claim(b *core.Backend) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.claimed.Has(b) {
		return false
	}
	h.claimed.Add(b)
	return true
}

// unclaim forgets b, taken by an attempt that sent nothing there.
func (h *hedgedCall) unclaim(b *core.Backend) {
	h.mu.Lock()
	h.claimed.Remove(b)
	h.mu.Unlock()
}

// triedInto copies the backends the call's attempts took into tr, for an
// attempt's pick: the pick may wait (for a growth, or for a backend with
// grpc.WaitForReady), and is made on a copy so that the call's other
// attempts can pick meanwhile.
func (h *hedgedCall) triedInto(tr *core.Tried) {
	h.mu.Lock()
	*tr = h.claimed
	h.mu.Unlock()
}
