package pool

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/internal/chash"
	"github.com/grpcpool/grpcpool/internal/wrr"
)

// A snapshot is the immutable view calls pick from: the backends that can
// take calls now, each with its pickable connections. A new one is
// published on every change; changed is closed when it is replaced.
type snapshot struct {
	backends []*pickBackend
	err      error // with no backends: the status calls fail with
	wait     bool  // with no backends: the pool is still starting; calls wait
	changed  chan struct{}
	sched    *wrr.Schedule  // RoundRobin with unequal weights
	ring     *chash.Table   // ConsistentHash: over every resolved backend
	ringPB   []*pickBackend // ring index → its entry in backends; nil when it cannot take calls
}

type pickBackend struct {
	b      *backend
	weight int64 // the backend's weight when the snapshot was built
	conns  []*conn
	next   atomic.Uint32
}

// rebuild publishes a new snapshot.
func (p *Pool) rebuild() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rebuildLocked()
}

func (p *Pool) rebuildLocked() {
	if p.closing {
		return
	}
	s := &snapshot{}
	var open, unhealthy, starting, failing, connecting int
	for _, b := range p.order {
		switch breaker.State(b.brkState.Load()) {
		case breaker.StateOpen:
			open++
			continue
		}
		pb := &pickBackend{b: b, weight: int64(b.weight)}
		notServing := false
		for _, c := range b.conns {
			if c.pickable() {
				pb.conns = append(pb.conns, c)
				continue
			}
			if c.draining.Load() {
				continue
			}
			switch {
			case !c.settled.Load():
				starting++
			case c.unhealthy.Load() && connectivity.State(c.state.Load()) == connectivity.Ready:
				notServing = true
			case connectivity.State(c.state.Load()) == connectivity.TransientFailure:
				failing++
			default:
				connecting++
			}
		}
		if len(pb.conns) > 0 {
			pb.next.Store(rand.Uint32())
			s.backends = append(s.backends, pb)
		} else if notServing {
			unhealthy++
		}
	}
	if len(s.backends) == 0 {
		s.wait, s.err = p.whyEmptyLocked(open, unhealthy, starting, failing, connecting)
	} else {
		p.indexLocked(s)
	}
	p.publishLocked(s)
}

// whyEmptyLocked says why no backend can take a call: calls wait while the
// pool is starting (first resolution, first connection attempts), and fail
// at once with codes.Unavailable naming the cause otherwise.
func (p *Pool) whyEmptyLocked(open, unhealthy, starting, failing, connecting int) (bool, error) {
	n := len(p.order)
	switch {
	case !p.resolved:
		return true, nil
	case n == 0:
		return false, status.Errorf(codes.Unavailable, "%s %q%s", msgNoAddresses, p.target, describeResolverErr(p.resErr))
	case starting > 0:
		return true, nil
	case open == n:
		return false, status.Errorf(codes.Unavailable, "%s (%d of %d)", msgAllOpen, open, n)
	}
	var parts []string
	if open > 0 {
		parts = append(parts, fmt.Sprintf("%d with open circuit breakers", open))
	}
	if unhealthy > 0 {
		parts = append(parts, fmt.Sprintf("%d not serving (health check)", unhealthy))
	}
	if failing > 0 {
		parts = append(parts, fmt.Sprintf("%d failing to connect", failing))
	}
	if connecting > 0 {
		parts = append(parts, fmt.Sprintf("%d connecting", connecting))
	}
	return false, status.Errorf(codes.Unavailable, "%s to any of %d backends of %q: %s%s",
		msgNotReady, n, p.target, strings.Join(parts, ", "), describeResolverErr(p.resErr))
}

func (p *Pool) publishLocked(s *snapshot) {
	s.changed = make(chan struct{})
	old := p.snap.Swap(s)
	if old != nil && old.changed != nil {
		close(old.changed)
	}
}

// A pick is where one attempt of a call goes.
type pick struct {
	c        *conn
	done     func(error) // the breaker's, nil without WithBreaker
	overflow bool        // placed beyond the connection's known limit
}

// tried holds the backends earlier attempts of a call went to.
type tried struct {
	n int
	b [8]*backend
}

func (t *tried) add(b *backend) {
	if t.n < len(t.b) {
		t.b[t.n] = b
		t.n++
	}
}

func (t *tried) has(b *backend) bool {
	for _, x := range t.b[:t.n] {
		if x == b {
			return true
		}
	}
	return false
}

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

// pick chooses a connection for one attempt of a call, waiting while the
// pool starts, or while there is none when the caller asked for
// grpc.WaitForReady(true).
func (p *Pool) pick(ctx context.Context, method string, opts []grpc.CallOption, tr *tried) (pick, error) {
	var wfr, wfrKnown bool
	for {
		s := p.snap.Load()
		if len(s.backends) > 0 {
			if pk, ok := p.pickFrom(ctx, s, method, tr); ok {
				return pk, nil
			}
			pk, ok, wait := p.growOrOverflow(s)
			if ok {
				return pk, nil
			}
			if !wait {
				// Everything in this snapshot refused the call (breakers
				// half-open with their probes out, conns lost mid-pick):
				// fail at once unless the caller waits.
				if !wfrKnown {
					wfr, wfrKnown = waitForReady(opts), true
				}
				if !wfr {
					return pick{}, status.Errorf(codes.Unavailable, "%s: every backend refused the call (circuit breakers open, or half-open with their probes in flight)", msgNotReady)
				}
			}
		} else if !s.wait {
			if p.closed.Load() {
				return pick{}, status.Error(codes.Canceled, msgClosed)
			}
			if !wfrKnown {
				wfr, wfrKnown = waitForReady(opts), true
			}
			if !wfr {
				return pick{}, s.err
			}
		}
		select {
		case <-ctx.Done():
			return pick{}, status.FromContextError(ctx.Err()).Err()
		case <-s.changed:
		}
	}
}

// pickFrom picks from one snapshot by the pool's policy, skipping backends
// an earlier attempt tried (unless nothing else is left), breakers that
// refuse, and full connections.
func (p *Pool) pickFrom(ctx context.Context, s *snapshot, method string, tr *tried) (pick, bool) {
	n := len(s.backends)
	switch p.o.policy {
	case LeastActive:
		if pk, ok := p.pickLeast(s, tr); ok {
			return pk, true
		}
	case ConsistentHash:
		if s.ring != nil {
			if key, ok := p.hashKey(ctx, method); ok {
				return p.pickHash(s, key, tr)
			}
		}
	}
	// Round-robin, also the fallback of the other policies.
	start := p.rr.Add(1)
	skipTried := tr != nil && tr.n > 0 && tr.n < n
	for k := range uint32(n) {
		i := start + k
		var pb *pickBackend
		if s.sched != nil {
			pb = s.backends[s.sched.Pick(uint64(i))]
		} else {
			pb = s.backends[i%uint32(n)]
		}
		if skipTried && tr.has(pb.b) {
			continue
		}
		if pk, ok := p.take(pb); ok {
			return pk, true
		}
	}
	if skipTried {
		return p.pickFrom(ctx, s, method, nil)
	}
	return pick{}, false
}

// pickLeast is the power of two choices over backends by active calls and
// streams per unit of weight, then over the chosen backend's connections.
func (p *Pool) pickLeast(s *snapshot, tr *tried) (pick, bool) {
	n := len(s.backends)
	if n == 1 {
		return p.take(s.backends[0])
	}
	r := rand.Uint64()
	i := int(r % uint64(n))
	j := int((r >> 32) % uint64(n-1))
	if j >= i {
		j++
	}
	a, b := s.backends[i], s.backends[j]
	if tr != nil && tr.n > 0 {
		ta, tb := tr.has(a.b), tr.has(b.b)
		if ta && tb && tr.n < n {
			// Both choices were tried and some backend was not: leave the
			// pick to pickFrom's round-robin fallback, which skips tried
			// backends.
			return pick{}, false
		}
		if ta && !tb {
			a, b = b, a
		} else if ta == tb && lessLoaded(b, a) {
			a, b = b, a
		}
	} else if lessLoaded(b, a) {
		a, b = b, a
	}
	if pk, ok := p.take(a); ok {
		return pk, true
	}
	return p.take(b)
}

// lessLoaded reports whether a carries less than b per unit of weight.
func lessLoaded(a, b *pickBackend) bool {
	return a.b.load()*b.weight < b.b.load()*a.weight
}

// take places the call on one of pb's connections, if its breaker lets it
// and a connection has room.
func (p *Pool) take(pb *pickBackend) (pick, bool) {
	c := p.connOf(pb)
	if c == nil {
		return pick{}, false
	}
	var done func(error)
	if brk := pb.b.brk; brk != nil {
		var err error
		if done, err = brk.Allow(); err != nil {
			return pick{}, false
		}
	}
	ok := c.acquire()
	if l := c.limit.Load(); ok && l > 0 && c.active.Load() > l {
		// connOf saw room, but another call took it meanwhile.
		c.release()
		ok = false
	}
	if !ok {
		if done != nil {
			done(errNotSent)
		}
		return pick{}, false
	}
	return pick{c: c, done: done}, true
}

// connOf chooses a connection of pb with room: in turn for RoundRobin and
// ConsistentHash, by the power of two choices for LeastActive.
func (p *Pool) connOf(pb *pickBackend) *conn {
	cs := pb.conns
	n := uint32(len(cs))
	if n == 1 {
		if cs[0].full() {
			return nil
		}
		return cs[0]
	}
	if p.o.policy == LeastActive {
		r := rand.Uint64()
		i := uint32(r % uint64(n))
		j := uint32((r >> 32) % uint64(n-1))
		if j >= i {
			j++
		}
		a, b := cs[i], cs[j]
		if b.active.Load() < a.active.Load() {
			a, b = b, a
		}
		if !a.full() {
			return a
		}
		if !b.full() {
			return b
		}
	}
	start := pb.next.Add(1)
	for k := range n {
		if c := cs[(start+k)%n]; !c.full() {
			return c
		}
	}
	return nil
}
