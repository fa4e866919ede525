package core

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrNotSent is what a breaker is told about a call that was admitted but
// never sent: the default classifier ignores it (codes.Canceled).
var ErrNotSent = status.Error(codes.Canceled, "grpcpool: call not sent")

// PickInfo is what a pick knows of its call.
type PickInfo struct {
	Key    string // ConsistentHash: the call's key, when HasKey
	HasKey bool
	Tried  *Tried // backends earlier attempts went to; nil for a first attempt
	// Grow is called, at most once per backend until the Core handles it,
	// for a backend whose connections are all full and that may grow. It
	// must not block (the pool queues a Core.Grow).
	Grow func(*Backend)
}

// Result is where one attempt of a call goes.
type Result struct {
	Conn     *Conn
	Done     func(error) // the breaker's; nil without breakers
	Overflow bool        // placed beyond the connection's known limit
}

// Outcome is what a pick came to.
type Outcome uint8

const (
	// Picked: Result holds the connection, acquired.
	Picked Outcome = iota
	// Wait: nothing now, but a newer picker is coming (the pool is
	// starting, a connection is being added, a connection was retired
	// under the pick): wait for Changed, or fail when the caller does not
	// wait and Err is set.
	Wait
	// Fail: nothing can take the call; FailErr says why.
	Fail
	// WaitGrowth: every connection with room is full and a connection is
	// being added: wait for it, for a bounded time, then Overflow.
	WaitGrowth
)

// Pick chooses a connection for one attempt. On Picked the connection is
// acquired (see Hot.Acquire) and, with breakers, admitted by its backend's
// breaker. On Fail, FailErr gives the status.
func (p *Picker) Pick(info PickInfo) (Result, Outcome) {
	if len(p.backends) == 0 {
		if p.wait {
			return Result{}, Wait
		}
		return Result{}, Fail
	}
	switch p.policy {
	case ConsistentHash:
		if info.HasKey && p.ring != nil {
			r, o, done := p.pickHash(info)
			if done {
				return r, o
			}
		}
	case LeastActive:
		if r, ok := p.pickLeast(info.Tried); ok {
			return r, Picked
		}
	case PeakEWMA:
		if r, ok := p.pickEWMA(info.Tried); ok {
			return r, Picked
		}
	}
	if r, ok := p.pickRoundRobin(info.Tried); ok {
		return r, Picked
	}
	return p.whenFull(info)
}

// FailErr is the status of a Fail outcome: the picker's error, or, when
// every backend refused, why.
func (p *Picker) FailErr() error {
	if p.err != nil {
		return p.err
	}
	return status.Error(codes.Unavailable, MsgNotReady+": every backend's circuit breaker refused the call (half-open, with its probes in flight)")
}

// take places the call on one of pb's connections, if its breaker lets it
// and a connection has room. Connections are taken in turn by the calling
// P's own counter (see counters.turn).
func (p *Picker) take(pb *pickBackend) (Result, bool) {
	if len(pb.conns) == 1 {
		return p.takeAt(pb, 0)
	}
	s := p.ctr.pin()
	t := p.ctr.turn(s)
	unpin()
	return p.takeAt(pb, uint32(t))
}

// takeAt is take with the connection rotation at turn.
func (p *Picker) takeAt(pb *pickBackend, turn uint32) (Result, bool) {
	for range 2 { // a connection retired under the pick: try another once
		c := p.connOf(pb, turn)
		if c == nil {
			return Result{}, false
		}
		turn++
		var done func(error)
		if brk := pb.b.Breaker; brk != nil && !pb.bypass {
			var err error
			if done, err = brk.Allow(); err != nil {
				return Result{}, false
			}
		}
		if c.AcquireWithin() {
			return Result{Conn: c, Done: done}, true
		}
		if done != nil {
			done(ErrNotSent)
		}
	}
	return Result{}, false
}

// connOf chooses a connection of pb with room: the least active one for
// LeastActive and PeakEWMA, in turn otherwise.
func (p *Picker) connOf(pb *pickBackend, turn uint32) *Conn {
	cs := pb.conns
	n := uint32(len(cs))
	if n == 1 {
		if cs[0].Full() || cs[0].closed.Load() {
			return nil
		}
		return cs[0]
	}
	start := turn + pb.off
	if p.policy == LeastActive || p.policy == PeakEWMA {
		var best *Conn
		for k := range n {
			c := cs[(start+k)%n]
			if c.Full() || c.closed.Load() {
				continue
			}
			if best == nil || c.Active() < best.Active() {
				best = c
			}
		}
		return best
	}
	for k := range n {
		if c := cs[(start+k)%n]; !c.Full() && !c.closed.Load() {
			return c
		}
	}
	return nil
}

// whenFull handles a pick that found no connection with room: backends
// whose connections are all full and that may grow are asked to, and the
// call waits for the growth; otherwise it overflows onto the least-loaded
// connection at once (gRPC then queues it on that connection, as it would
// without the pool).
func (p *Picker) whenFull(info PickInfo) (Result, Outcome) {
	growing, anyFull := false, false
	for _, pb := range p.backends {
		if !allFull(pb) {
			continue
		}
		anyFull = true
		switch {
		case pb.growing:
			growing = true
		case pb.canGrow && info.Grow != nil:
			if pb.b.growReq.CompareAndSwap(false, true) {
				info.Grow(pb.b)
			}
			growing = true
		}
	}
	if growing {
		return Result{}, WaitGrowth
	}
	if !anyFull {
		// Something refused the call without being full: breakers with
		// their probes out, or connections retired under the pick.
		if p.Stale() || !p.anyBreaker() {
			return Result{}, Wait
		}
		return Result{}, Fail
	}
	return p.overflow()
}

// Overflow places the call on the least-loaded connection despite its
// limit; the pool uses it for calls that do not wait for a growth.
func (p *Picker) Overflow() (Result, Outcome) {
	if len(p.backends) == 0 {
		if p.wait {
			return Result{}, Wait
		}
		return Result{}, Fail
	}
	return p.overflow()
}

func (p *Picker) overflow() (Result, Outcome) {
	var best *pickBackend
	var bc *Conn
	for _, pb := range p.backends {
		for _, c := range pb.conns {
			if c.closed.Load() {
				continue
			}
			if bc == nil || c.Active() < bc.Active() {
				best, bc = pb, c
			}
		}
	}
	if bc == nil {
		return Result{}, Wait
	}
	var done func(error)
	if brk := best.b.Breaker; brk != nil && !best.bypass {
		var err error
		if done, err = brk.Allow(); err != nil {
			return Result{}, Fail
		}
	}
	if !bc.Acquire() {
		if done != nil {
			done(ErrNotSent)
		}
		return Result{}, Wait
	}
	return Result{Conn: bc, Done: done, Overflow: true}, Picked
}

func allFull(pb *pickBackend) bool {
	for _, c := range pb.conns {
		if !c.Full() {
			return false
		}
	}
	return true
}

func (p *Picker) anyBreaker() bool {
	for _, pb := range p.backends {
		if pb.b.Breaker != nil {
			return true
		}
	}
	return false
}

// skipTried reports whether a pick should pass over tried backends: some
// were tried and some were not.
func skipTried(tr *Tried, n int) bool { return tr.Len() > 0 && tr.Len() < n }
