package pool

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
// least-loaded one. A growth whose dial fails ends the wait at once (the
// backend then backs off growing, and calls overflow without waiting).
const growWait = 5 * time.Second

// refusedRecheck is how often a grpc.WaitForReady call that nothing could
// take picks again without a new picker: a half-open breaker's probe that
// ends as neither success nor failure gives its slot back without any
// change of state, so no new picker announces it.
const refusedRecheck = 100 * time.Millisecond

// pick chooses a connection for one attempt of the call, within ctx, on a
// backend not in tr whenever one can take it. It waits while the
// pool starts, while a key's owner makes its first connection, and for a
// bounded time while a full backend grows; when nothing can take the call
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
	var grow, recheck *time.Timer
	var growC, recheckC <-chan time.Time
	defer func() {
		if grow != nil {
			grow.Stop()
		}
		if recheck != nil {
			recheck.Stop()
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
			return r, s, nil
		case core.WaitGrowth:
			if grow == nil {
				grow = time.NewTimer(growWait)
				growC = grow.C
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
			if recheck == nil {
				recheck = time.NewTimer(refusedRecheck)
			} else {
				recheck.Reset(refusedRecheck)
			}
			recheckC = recheck.C
		}
		if waited.IsZero() {
			waited = time.Now()
		}
		select {
		case <-ctx.Done():
			return core.Result{}, s, status.FromContextError(ctx.Err()).Err()
		case <-s.Changed():
		case <-recheckC:
			recheckC = nil
		case <-growC:
			growC = nil
			if r, o := p.picker.Load().Overflow(); o == core.Picked {
				return r, s, nil
			}
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
