package core

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/internal/chash"
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
	// Wait: nothing now, but a newer picker is certain to come (the pool
	// is starting, a key's owner is making its first connection, a
	// connection was retired under the pick): wait for Changed, or fail
	// when the caller does not wait and Err is set.
	Wait
	// Fail: nothing can take the call; FailErr says why.
	Fail
	// WaitGrowth: every connection is full and a connection is being
	// added, or the core was asked to add one: a newer picker comes when
	// the core has handled the request and again when the connection is
	// ready or has failed. Wait for it, for a bounded time, then Overflow.
	WaitGrowth
)

// String names the outcome.
func (o Outcome) String() string {
	switch o {
	case Picked:
		return "Picked"
	case Wait:
		return "Wait"
	case Fail:
		return "Fail"
	case WaitGrowth:
		return "WaitGrowth"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// refusals records why the backends a pick tried did not take its call.
type refusals uint8

const (
	refusedFull    refusals = 1 << iota // a connection was full (or filled under the pick)
	refusedRetired                      // a connection was retired under the pick
	refusedBreaker                      // a breaker refused the call
)

// pickRounds is how many times a pick that found room after losing a race
// for it picks again before it overflows.
const pickRounds = 4

// Pick chooses a connection for one attempt. On Picked the connection is
// acquired (see Hot.Acquire) and, with breakers, admitted by its backend's
// breaker. On Fail, FailErr gives the status. Wait and WaitGrowth are
// outcomes a coming picker is certain to end (see Outcome).
func (p *Picker) Pick(info PickInfo) (Result, Outcome) {
	if len(p.backends) == 0 {
		if p.wait {
			return Result{}, Wait
		}
		return Result{}, Fail
	}
	var key uint64 // the hash of info.Key
	if info.HasKey {
		key = chash.Hash(info.Key)
	}
	for range pickRounds {
		var why refusals
		var r Result
		var o Outcome
		var done bool
		if p.zones != nil {
			r, o, done = p.pickZones(&info, key, &why)
		} else {
			r, o, done = p.pickWith(key, info.HasKey, info.Tried, &why)
		}
		if done {
			return r, o
		}
		if r, o, again := p.whenFull(info, why); !again {
			return r, o
		}
	}
	return p.overflow()
}

// pickWith is one pick by the picker's own policy (with zone-aware
// routing, a zone's picker's), then, when no backend took the call, by its
// round-robin fallback; key is the hash of the call's key, tr holds the
// backends earlier attempts went to (nil: none). done is false when no
// backend took the call; why says what refused it.
func (p *Picker) pickWith(key uint64, hasKey bool, tr *Tried, why *refusals) (Result, Outcome, bool) {
	var r Result
	var o Outcome
	var w refusals
	var done bool
	if tr.Len() == 0 {
		tr = nil
		r, o, w, done = p.pol.pick(p, key, hasKey)
	} else {
		r, o, w, done = p.pol.retry(p, key, hasKey, *tr)
	}
	*why |= w
	if !done {
		if rr := p.pol.fallback(); rr != nil {
			var ok bool
			if r, ok = rr.take(p, tr, why); ok {
				return r, Picked, true
			}
		}
	}
	return r, o, done
}

// outcomeOf is the outcome of a policy's pick that placed the call
// (done) or not.
func outcomeOf(done bool) Outcome {
	if done {
		return Picked
	}
	return Fail
}

// FailErr is the status of a Fail outcome: the picker's error, or, when
// every backend's breaker refused, that.
func (p *Picker) FailErr() error {
	if p.err != nil {
		return p.err
	}
	return status.Error(codes.Unavailable, MsgNotReady+": every backend's circuit breaker refused the call (half-open, with its probes in flight)")
}

// take places the call on one of pb's connections, if its breaker lets it
// and a connection has room: the least active one when least is set, else
// in turn by the calling P's own counter (see counters.turn).
func (p *Picker) take(pb *pickBackend, least bool, why *refusals) (Result, bool) {
	if len(pb.conns) == 1 {
		return p.takeAt(pb, 0, least, why)
	}
	s := p.ctr.pin()
	t := p.ctr.turn(s)
	unpin()
	return p.takeAt(pb, uint32(t), least, why)
}

// takeAt is take with the connection rotation at turn.
func (p *Picker) takeAt(pb *pickBackend, turn uint32, least bool, why *refusals) (Result, bool) {
	for range 2 { // a connection filled or retired under the pick: try another once
		c := connOf(pb, turn, least, why)
		if c == nil {
			return Result{}, false
		}
		turn++
		var done func(error)
		if brk := pb.b.Breaker; brk != nil && !pb.bypass {
			var err error
			if done, err = brk.Allow(); err != nil {
				*why |= refusedBreaker
				return Result{}, false
			}
		}
		if c.AcquireWithin() {
			return Result{Conn: c, Done: done}, true
		}
		if c.Retired() {
			*why |= refusedRetired
		} else {
			*why |= refusedFull
		}
		if done != nil {
			done(ErrNotSent)
		}
	}
	return Result{}, false
}

// connOf chooses a connection of pb with room: the least active one when
// least is set (LeastActive and PeakEWMA), in turn otherwise. It records
// in why the connections it passed over.
func connOf(pb *pickBackend, turn uint32, least bool, why *refusals) *Conn {
	cs := pb.conns
	n := uint32(len(cs))
	if n == 1 {
		if usable(cs[0], why) {
			return cs[0]
		}
		return nil
	}
	start := turn + pb.off
	if least {
		var best *Conn
		for k := range n {
			c := cs[(start+k)%n]
			if !usable(c, why) {
				continue
			}
			if best == nil || c.Active() < best.Active() {
				best = c
			}
		}
		return best
	}
	for k := range n {
		if c := cs[(start+k)%n]; usable(c, why) {
			return c
		}
	}
	return nil
}

// usable reports whether c can take a call now, recording in why when it
// cannot.
func usable(c *Conn, why *refusals) bool {
	v := c.word.Load()
	switch {
	case v&retiredBit != 0:
		*why |= refusedRetired
	case c.Full():
		*why |= refusedFull
	default:
		return true
	}
	return false
}

// whenFull decides for a pick that no backend took (why says what refused
// it). A connection retired under the pick means a newer picker is
// coming: wait for it. Backends whose connections are all full and that
// may grow are asked to, and the call waits for the growth; full backends
// that may not grow take the call as overflow, on the least-loaded
// connection whose breaker admits it (gRPC then queues it there, as it
// would without the pool). A pick that found a connection full which has
// room now lost a race for it: it picks again (again is true). Only a pick
// that breakers alone refused fails.
func (p *Picker) whenFull(info PickInfo, why refusals) (r Result, o Outcome, again bool) {
	if why&refusedRetired != 0 || p.Stale() {
		return Result{}, Wait, false
	}
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
	switch {
	case growing:
		return Result{}, WaitGrowth, false
	case anyFull:
		r, o = p.overflow()
		return r, o, false
	case why&refusedFull != 0:
		return Result{}, Picked, true // room appeared after a lost race: pick again
	case why&refusedBreaker != 0:
		return Result{}, Fail, false
	}
	return Result{}, Picked, true
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

// overflow places the call on the least-loaded connection whose breaker
// admits it, whatever its limit. Candidates are taken in order of (load,
// backend index): a backend whose breaker refuses (half-open with its
// probes in flight) passes the call to the next. It waits when every
// connection was retired under it (a newer picker is coming) and fails
// when every breaker refused.
func (p *Picker) overflow() (Result, Outcome) {
	lastL, lastI := int64(-1), -1 // the key of the last candidate refused
	for range len(p.backends) {
		var best *pickBackend
		var bc *Conn
		bi := -1
		for i, pb := range p.backends {
			var c *Conn
			for _, x := range pb.conns {
				if !x.Retired() && (c == nil || x.Active() < c.Active()) {
					c = x
				}
			}
			if c == nil {
				continue
			}
			l := c.Active()
			if l < lastL || l == lastL && i <= lastI {
				continue // at or before the last candidate refused
			}
			if bc == nil || l < bc.Active() {
				best, bc, bi = pb, c, i
			}
		}
		if bc == nil {
			break
		}
		lastL, lastI = bc.Active(), bi
		var done func(error)
		if brk := best.b.Breaker; brk != nil && !best.bypass {
			var err error
			if done, err = brk.Allow(); err != nil {
				continue
			}
		}
		if !bc.Acquire() {
			if done != nil {
				done(ErrNotSent)
			}
			return Result{}, Wait // retired under the pick
		}
		return Result{Conn: bc, Done: done, Overflow: true}, Picked
	}
	if lastI < 0 {
		return Result{}, Wait // every connection retired under the pick
	}
	return Result{}, Fail
}

func allFull(pb *pickBackend) bool {
	for _, c := range pb.conns {
		if !c.Full() {
			return false
		}
	}
	return true
}

// skipTried reports whether a pick should pass over tried backends: some
// were tried and some were not.
func skipTried(tr *Tried, n int) bool { return tr.Len() > 0 && tr.Len() < n }
