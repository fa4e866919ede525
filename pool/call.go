package pool

import (
	"cmp"
	"context"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/hedging"
	"github.com/grpcpool/grpcpool/internal/telemetry"
	"github.com/grpcpool/grpcpool/retry"
)

// Calls have the shape connections have in the core: a call (one logical
// call or stream) drives attempts (one try on one connection each) through
// next, end and after:
//
//   - call.next picks the connection of the next attempt;
//   - attempt.end settles an attempt exactly once, whatever route ended it;
//   - call.after decides what follows: done, placed again (nothing was
//     sent), or retried after its backoff;
//   - call.end settles the call once: its metric and the caller's OnFinish.
//
// Unary calls (call.invoke), streams (caller.stream) and the attempts of
// hedged calls (hedgedCall.attempt) are short loops over them. See
// docs/design.md, "Calls and attempts".

// caller is the pool's call machinery: Invoke and NewStream go through it.
// It is safe for concurrent use.
type caller struct {
	p        *Pool
	unary    grpc.UnaryInvoker // the pool-level interceptors around invoke
	streamer grpc.Streamer     // the pool-level interceptors around stream
	budget   *retry.Budget     // nil without WithRetry
	ids      atomic.Uint64     // numbers stream calls for the core's stall evidence
}

// Invoke performs a unary RPC on one of the pool's connections and returns
// after the response is received into reply. With WithRetry, a failed
// attempt is retried on another backend under the retry policy.
func (p *Pool) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return p.caller.unary(ctx, method, args, reply, nil, opts...)
}

// NewStream begins a stream on one of the pool's connections. The stream
// counts as active on its backend until it ends by any route: an error,
// io.EOF, the caller's context, or the pool closing. With WithRetry, a
// stream whose NewStream failed (nothing reached a server) is begun again on
// another backend; once begun it is never retried.
func (p *Pool) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return p.caller.streamer(ctx, desc, nil, method, opts...)
}

// call is one logical call or stream: what every attempt of it shares. A
// unary call's lives on its caller's stack; a stream's is allocated with
// its first attempt (see stream). Only a hedged call's attempts run
// concurrently: each runs as a call of its own, a copy of the hedged
// call's with the attempt's context and number and hedge set, and they
// share the backends tried under hedgedCall's lock.
type call struct {
	p      *Pool
	ctx    context.Context // the caller's
	method string
	opts   []grpc.CallOption // the caller's, without its OnFinish
	fin    []func(error)     // the caller's OnFinish: run once, by end
	mc     retry.MethodConfig
	start  telemetry.Stamp // for its duration metric; 0 while metrics are off

	tried core.Tried  // the backends its attempts went to; a hedged attempt's: those its call's had when it last picked
	n     int         // the attempt the next retry decision is about (1 for the first); a hedged attempt's number
	last  error       // the error of the last attempt made
	hedge *hedgedCall // the hedged call this is an attempt of; nil for others

	id     uint64 // a stream call's number, for the core's stall evidence
	stalls int    // a stream call's attempts given up on a stalled NewStream
}

// init makes c, a zero call, the call of method with opts (OnFinish
// taken out). It sets c's fields one by one: a call is some 240 bytes,
// which a composite literal would build apart and then copy in.
func (c *call) init(p *Pool, ctx context.Context, method string, opts []grpc.CallOption) {
	c.p, c.ctx, c.method, c.n = p, ctx, method, 1
	c.opts, c.fin = splitOnFinish(opts)
	c.start = p.rec.Start(ctx)
	if p.o.methods != nil {
		c.mc = p.o.methods.ForCall(method, c.opts)
	}
}

// invoke is a unary call inside the pool-level interceptors: a
// grpc.UnaryInvoker.
func (k *caller) invoke(ctx context.Context, method string, args, reply any, _ *grpc.ClientConn, opts ...grpc.CallOption) error {
	var c call
	c.init(k.p, ctx, method, opts)
	var err error
	if c.mc.Hedging != nil {
		err = hedged(&c, args, reply)
	} else {
		err = c.invoke(args, reply)
	}
	return c.end(err)
}

// invoke makes the unary call c: attempts until one succeeds or the retry
// decision says no more.
func (c *call) invoke(args, reply any) error {
	c.deposit()
	for {
		var a attempt
		if err := c.next(&a, telemetry.KindUnary); err != nil {
			return err
		}
		err := a.invoke(c.ctx, c, args, reply)
		if again, err := c.after(&a, err); !again {
			return err
		}
	}
}

// stream is a stream call inside the pool-level interceptors: a
// grpc.Streamer.
func (k *caller) stream(ctx context.Context, desc *grpc.StreamDesc, _ *grpc.ClientConn, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	st := &stream{}
	c := &st.own
	c.init(k.p, ctx, method, opts)
	c.id = k.ids.Add(1)
	c.deposit()
	for {
		st.c = c
		if err := c.next(&st.attempt, telemetry.KindStream); err != nil {
			return nil, c.end(err)
		}
		err := st.open(desc)
		if again, err := c.after(&st.attempt, err); !again {
			if err != nil {
				return nil, c.end(err)
			}
			return st, nil
		}
		st = &stream{}
	}
}

// deposit pays the call into the retry budget, once, when it may retry.
func (c *call) deposit() {
	if c.mc.Retry != nil {
		c.p.caller.budget.Deposit()
	}
}

// next picks the connection of the call's next attempt into a, a zero
// attempt, of kind, and records its backend as tried (unclaim forgets it
// if the attempt sends nothing). When nothing can take the call it fails
// at once (a backoff would not change that, and would spend the retry
// budget), with the last attempt's error if there was one. A hedged
// call's attempt picks from the backends its call's attempts took and
// records its own among them (hedgedCall.claim); it is not sent
// (hedging.ErrNotSent) when another attempt took the backend first: that
// attempt carries the call there.
func (c *call) next(a *attempt, kind telemetry.Kind) error {
	if c.hedge != nil {
		c.hedge.triedInto(&c.tried)
	}
	pk, s, err := c.pick(c.ctx, &c.tried)
	if err != nil {
		return cmp.Or(c.last, err)
	}
	a.p, a.method, a.pk, a.s, a.kind = c.p, c.method, pk, s, kind
	if b := pk.Conn.Backend; c.hedge == nil {
		c.tried.Add(b)
	} else if !c.hedge.claim(b) {
		a.unpick()
		return hedging.ErrNotSent
	}
	return nil
}

// unclaim forgets b, claimed for an attempt that sent nothing there.
func (c *call) unclaim(b *core.Backend) {
	if c.hedge != nil {
		c.hedge.unclaim(b)
		return
	}
	c.tried.Remove(b)
}

// after decides what follows attempt a, which ended in err: whether the
// call makes another attempt — placed again when nothing was sent (the
// connection left READY under the pick, or a stream stalled) and the
// attempt's context is still live, retried after its backoff under the
// retry policy — and otherwise the error the call ends with, which ends
// it on the attempt's backend (ends). A hedged call's attempt is never
// retried: its engine decides what follows.
func (c *call) after(a *attempt, err error) (bool, error) {
	b := a.pk.Conn.Backend
	if err == nil {
		c.ends(b)
		return false, nil
	}
	if (err == errStalled || notSent(err)) && c.ctx.Err() == nil {
		if err == errStalled {
			c.stalls++
		}
		c.unclaim(b)
		// Let the core apply what the attempt taught (a learned limit, a
		// connection no longer READY) before placing it again.
		awaitChange(c.ctx, a.s)
		return true, nil
	}
	again, err := c.retry(err, a.d)
	if !again {
		c.ends(b)
		return false, err
	}
	c.last = err
	c.n++
	return true, nil
}

// ends says that the call ends with the result of its attempt on b: b
// counts the call. The attempts of a hedged call end concurrently and its
// engine chooses which one ends the call (hedging.Call.End), so such an
// attempt only leaves b for that choice (hedgedCall.end).
func (c *call) ends(b *core.Backend) {
	if h := c.hedge; h != nil {
		h.ends[c.n-1] = b
		return
	}
	b.Ended.Add(1)
}

// end settles the call, which ended in err: its duration metric and the
// caller's OnFinish. It returns err.
func (c *call) end(err error) error {
	c.p.rec.CallDoneSince(c.ctx, c.method, status.Code(err), c.start)
	for _, f := range c.fin {
		f(err)
	}
	return err
}

// retry reports whether the call's attempt c.n, which ended in err, is
// retried, after waiting its backoff. It is retried only with WithRetry,
// for a code in the policy, within the policy's attempts and the pool's
// retry budget, when the caller's deadline leaves room for the backoff,
// and — when the request reached the server and no status came back from
// it (the connection broke under it, before or after response headers;
// d says, nil for a stream's NewStream, which sent nothing) — only for
// methods marked idempotent, since the server may have acted on it. It
// returns the error the call ends with when it is not retried: err, or
// the caller's context error when the context ended during the backoff.
func (c *call) retry(err error, d *delivery) (bool, error) {
	pol, ctx := c.mc.Retry, c.ctx
	if pol == nil || c.n >= pol.MaxAttempts || ctx.Err() != nil {
		return false, err
	}
	st, ok := status.FromError(err)
	if !ok || !pol.Retryable(st.Code()) || st.Message() == msgClosed {
		return false, err
	}
	if d != nil && d.sent.Load() && !d.status.Load() && !c.mc.Idempotent {
		return false, err
	}
	wait := pol.Backoff(c.n)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= wait {
		return false, err
	}
	p := c.p
	if !p.caller.budget.Withdraw() {
		p.rec.RetryRefused(ctx, c.method)
		return false, err
	}
	p.rec.RetryAttempt(ctx, c.method, telemetry.Retry)
	if wait <= 0 {
		return true, err
	}
	t := time.NewTimer(wait)
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
