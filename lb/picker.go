package lb

import (
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/internal/core"
)

// growWait is how long calls wait for a connection being added to a
// backend whose connections all carry MaxStreamsPerConn before they
// overflow onto the least loaded one: the pool's wait.
const growWait = 5 * time.Second

// picker is the balancer.Picker grpc picks from: the core's immutable
// picker, read without a lock.
type picker struct {
	g        *gen
	p        *core.Picker
	overflow bool        // calls that would wait for a growth overflow at once
	nudged   atomic.Bool // a pick asked for this picker to be published again
}

// Pick places one attempt of a call, as the pool's picks do: the core
// chooses the backend and its connection; grpc waits for the next picker
// when the core says to wait, and fails the call at once, with the core's
// reason, when nothing can take it — unless the call is WaitForReady,
// which grpc keeps waiting.
func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	g := p.g
	pi := core.PickInfo{Grow: g.growFn}
	if g.s.hashKey != "" {
		if v := metadata.ValueFromOutgoingContext(info.Ctx, g.s.hashKey); len(v) > 0 {
			pi.Key, pi.HasKey = v[0], true
		}
	}
	r, o := p.p.Pick(pi)
	if o == core.WaitGrowth {
		if !p.overflow {
			g.waitGrowth()
			return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
		}
		r, o = p.p.Overflow()
	}
	switch o {
	case core.Picked:
		return g.placed(r), nil
	case core.Fail:
		// Not a status: grpc fails a status error even for WaitForReady
		// calls. It gives a plain error codes.Unavailable and this
		// message, and keeps WaitForReady calls waiting.
		return balancer.PickResult{}, errors.New(status.Convert(p.p.FailErr()).Message())
	}
	if p.p.Ready() && !p.p.Stale() && p.nudged.CompareAndSwap(false, true) {
		// The core said wait although backends can take calls: a
		// connection was retired under the pick (a new picker is on its
		// way), or its last slot was taken and then freed by concurrent
		// calls (none is). grpc waits for a new picker either way: make
		// sure one comes.
		g.republish(p.p)
	}
	return balancer.PickResult{}, balancer.ErrNoSubConnAvailable
}

// placed counts the attempt on its backend and returns where grpc sends
// it; grpc calls Done exactly once, when the attempt ends (or at once,
// with nothing sent, when the SubConn left READY under the pick).
func (g *gen) placed(r core.Result) balancer.PickResult {
	c, done := r.Conn, r.Done
	b := c.Backend
	b.Started.Add(1)
	b.Calls.Add(1)
	var start time.Time
	if g.s.policy == core.PeakEWMA {
		start = time.Now()
	}
	return balancer.PickResult{
		SubConn: subOf(c).sc,
		Done:    func(di balancer.DoneInfo) { g.end(c, done, start, di) },
	}
}

// grow asks the core to add a connection to b, whose connections are all
// full; a pick calls it (at most once per backend until it is handled).
// If the core adds none (room appeared meanwhile), the same picker is
// published again, so the picks waiting for it pick again.
func (g *gen) grow(b *core.Backend) {
	g.b.q.Push(func(now time.Time) {
		if g.k.Closed() {
			return
		}
		before := g.k.Picker()
		g.k.Grow(now, b)
		g.k.Flush()
		if g.k.Picker() == before {
			g.publishLocked(before, false)
		}
	})
}

// waitGrowth makes sure that calls waiting for a growth wait at most
// growWait: unless the wait ends first, a picker that overflows them is
// published then. The wait ends when a growth lands (its connection
// becomes ready), and when no growth is under way any more (publishLocked):
// calls that still wait, having lost the new connection to others, and
// calls that find their backend full later, start a new one. Growths that
// begin or fail meanwhile do not restart it, so calls overflow when no
// growth lands within growWait, even while another backend's growths fail
// and begin again after each backoff.
func (g *gen) waitGrowth() {
	if !g.growArmed.CompareAndSwap(false, true) {
		return
	}
	g.b.q.Push(func(time.Time) {
		switch {
		case g.k.Closed():
		case g.growingLocked():
			g.armGrowWaitLocked(g.k.Picker().GrowthsLanded())
		default:
			// The growth ended, or has yet to begin: either publishes
			// a picker that the calls pick again from, and those that
			// wait then arm the timer.
			g.growArmed.Store(false)
		}
	})
}

// armGrowWaitLocked starts the growWait timer, landed growths having
// landed: when it fires, unless stopped first, calls waiting for a growth
// still under way overflow. A growth that landed (or failed) in time
// leaves nothing to overflow: the calls that waited for it picked again
// from the picker that said so, and the next call that finds its backend
// full asks for a growth of its own and waits for it.
func (g *gen) armGrowWaitLocked(landed uint64) {
	if g.growStop != nil {
		g.growStop()
	}
	g.growSeq++
	seq := g.growSeq
	g.landed = landed
	g.growStop = g.b.after(g.b.q, growWait, growWaitTimer, func(time.Time) {
		if seq != g.growSeq || g.k.Closed() {
			return // stopped, or the policy closed, since
		}
		g.growStop = nil
		g.growArmed.Store(false)
		if g.growingLocked() {
			g.publishLocked(g.k.Picker(), true)
		}
	})
}

// stopGrowWaitLocked ends the pending growWait: the next call that waits
// for a growth starts a new one.
func (g *gen) stopGrowWaitLocked() {
	g.growStop()
	g.growStop = nil
	g.growSeq++
	g.growArmed.Store(false)
}

// growingLocked reports whether a growth is under way on some backend.
func (g *gen) growingLocked() bool {
	return slices.ContainsFunc(g.k.Backends(), (*core.Backend).Growing)
}
