package pool

import (
	"context"
	"github.com/grpcpool/grpcpool/internal/telemetry"
	"sync"

	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/retry"
)

// invokeHedged makes a unary call of a hedged method (mc.Hedging not nil)
// through the hedging engine: each attempt picks a backend the call has
// not tried, and a hedge that finds none is not sent. It is one logical
// call: Invoke runs the caller's grpc.OnFinish once around it (opts has
// them taken out), and it deposits into the budget once.
func (p *Pool) invokeHedged(ctx context.Context, mc retry.MethodConfig, method string, args, reply any, opts []grpc.CallOption) error {
	p.budget.Deposit()
	var (
		mu sync.Mutex // guards tr: attempts run in goroutines of their own
		tr core.Tried // the backends the call's attempts went to
	)
	return hedge(ctx, hedgeCall{
		mc:     mc,
		budget: p.budget,
		onHedge: func(refused bool) {
			if refused {
				p.rec.RetryRefused(ctx, method)
			} else {
				p.rec.RetryAttempt(ctx, method, telemetry.Hedge)
			}
		},
		attempt: func(ctx context.Context, n int, reply any, admit func() bool) error {
			for {
				// The pick may wait (for a growth, or for a backend with
				// grpc.WaitForReady): it is made on a copy of tr, so
				// that the call's other attempts can pick meanwhile.
				mu.Lock()
				seen := tr
				mu.Unlock()
				pk, s, err := p.pick(ctx, method, opts, &seen)
				mu.Lock()
				if err == nil && n > 1 && tr.Has(pk.Conn.Backend) {
					// Every backend was tried: a hedge there would only add
					// load where the call already waits.
					p.unpick(pk)
					err = errHedgeNotSent
				}
				if err == nil {
					tr.Add(pk.Conn.Backend)
				}
				mu.Unlock()
				if err != nil {
					if n > 1 {
						return errHedgeNotSent
					}
					return err
				}
				if admit != nil {
					if !admit() {
						p.unpick(pk)
						return errHedgeNotSent
					}
					admit = nil // a hedge placed again is not admitted again
				}
				err = p.invoke(ctx, pk, method, args, reply, opts, nil)
				if err == nil {
					pk.Conn.Backend.Ended.Add(1) // the attempt that answered ends the call
				}
				if notSent(err) && ctx.Err() == nil {
					// The connection left READY under the pick: nothing was
					// sent, so the call has not tried the backend (another
					// of its connections may take the attempt). Place the
					// attempt again, on the next picker.
					mu.Lock()
					tr.Remove(pk.Conn.Backend)
					mu.Unlock()
					awaitChange(ctx, s)
					continue
				}
				return err
			}
		},
	}, reply)
}

// unpick gives back a pick no request was sent on.
func (p *Pool) unpick(pk core.Result) {
	p.release(pk.Conn)
	if pk.Done != nil {
		pk.Done(core.ErrNotSent)
	}
}
