package pool

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/internal/core"
)

// waitForReady reports whether the call asked for grpc.WaitForReady(true).
func waitForReady(opts []grpc.CallOption) bool {
	wfr := false
	for _, o := range opts {
		if ff, ok := o.(grpc.FailFastCallOption); ok {
			wfr = !ff.FailFast
		}
	}
	return wfr
}

// growWait is how long a call waits for a connection being added to a
// backend whose connections are all full before it overflows onto the
// least-loaded one. The wait starts again each time a growth lands (its
// connection becomes ready) while the call still waits: a call that lost
// the new connection to other calls waits for the next growth (up to the
// backend's maximum size) with a bound of its own, so a slow dial does not
// push it onto a connection already at its limit, where it would queue in
// gRPC until a stream there ends. Growths that begin or fail do not
// restart it: one backend's growth that hangs is waited for growWait even
// while another backend's growths fail and begin again after each
// backoff. When the only growth fails, calls overflow at once (the backend
// then backs off growing).
const growWait = 5 * time.Second

// pick chooses a connection for one attempt of the call, within ctx, on a
// backend not in tr whenever one can take it. It waits while the
// pool starts, while a key's owner makes its first connection, and while
// a full backend grows, growWait at most since it began to wait or since a
// growth last landed; when nothing can take the call
// it fails at once with codes.Unavailable, unless the caller asked for
// grpc.WaitForReady(true), in which case it waits for a connection. It
// returns the picker it picked from.
func (c *call) pick(ctx context.Context, tr *core.Tried) (core.Result, *core.Picker, error) {
	p := c.p
	info := core.PickInfo{Tried: tr, Grow: p.growFn}
	if p.o.policy == ConsistentHash {
		info.Key, info.HasKey = p.o.hashKeyOf(ctx, c.method)
	}
	var wfr, wfrKnown bool
	var waited time.Time // when the call began to wait
	var grow *time.Timer // growWait for the growth the call waits for
	var growC <-chan time.Time
	var landed uint64 // the picker's GrowthsLanded when grow started
	defer func() {
		if grow != nil {
			grow.Stop()
		}
	}()
	for {
		s := p.picker.Load()
		r, o := s.Pick(info)
		switch o {
		case core.Picked:
			if !waited.IsZero() {
				p.rec.PickWait(ctx, time.Since(waited))
			}
			r.Done = p.probeDone(r.Conn.Backend, r.Done)
			return r, s, nil
		case core.WaitGrowth:
			if n := s.GrowthsLanded(); grow == nil || n != landed {
				if grow == nil {
					grow = time.NewTimer(growWait)
				} else {
					grow.Reset(growWait)
				}
				growC, landed = grow.C, n
			}
		case core.Fail:
			if p.closed.Load() {
				return r, s, status.Error(codes.Canceled, msgClosed)
			}
			if !wfrKnown {
				wfr, wfrKnown = waitForReady(c.opts), true
			}
			if !wfr {
				return r, s, s.FailErr()
			}
		}
		if waited.IsZero() {
			waited = time.Now()
		}
		select {
		case <-ctx.Done():
			return core.Result{}, s, status.FromContextError(ctx.Err()).Err()
		case <-s.Changed():
		case <-growC:
			growC = nil
			if r, o := p.picker.Load().Overflow(); o == core.Picked {
				r.Done = p.probeDone(r.Conn.Backend, r.Done)
				return r, s, nil
			}
		}
	}
}

// probeDone returns done, the breaker's for a call on b, made to tell the
// core when the call, a half-open breaker's probe, gives its slot back
// without a change of breaker state: it ends as neither success nor
// failure (not sent, cancelled, a stream unanswered within
// core.StreamProbeTimeout). The core then publishes a new picker, so the
// grpc.WaitForReady calls the breaker refused meanwhile, which wait for
// one, pick again. With the breaker closed, or no breaker, done itself.
func (p *Pool) probeDone(b *core.Backend, done func(error)) func(error) {
	if done == nil || b.BreakerState() == breaker.StateClosed {
		return done
	}
	return func(err error) {
		done(err)
		if core.ProbeGivenBack(b, err, p.o.classify) {
			// The breaker's admission changed, though not its state.
			p.events.push(func(now time.Time) { p.core.BreakerChanged(now, b) })
		}
	}
}

// awaitChange waits, within ctx, until a picker newer than s is published:
// after an attempt found its connection no longer READY, the next pick
// should not see the same picker again.
func awaitChange(ctx context.Context, s *core.Picker) {
	t := time.NewTimer(100 * time.Millisecond)
	defer t.Stop()
	select {
	case <-s.Changed():
	case <-ctx.Done():
	case <-t.C:
	}
}
