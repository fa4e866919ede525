package core

import (
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
)

// Messages of the statuses calls fail with when nothing can take them.
const (
	MsgNoAddresses = "grpcpool: no addresses resolved for target"
	MsgAllOpen     = "grpcpool: all backends have open circuit breakers"
	MsgNotReady    = "grpcpool: no ready connection"
)

// A Picker is the immutable view calls pick from: the backends that can
// take calls now, each with its connections that can. It is safe for
// concurrent use. A new one is published on every change; Changed is closed
// when it is replaced.
type Picker struct {
	policy   Policy // the configured policy
	pol      policy // its value for this picker, built from the previous one's
	backends []*pickBackend
	err      error // with no backends: the status calls fail with
	wait     bool  // with no backends: the pool is starting; calls wait
	changed  chan struct{}
	rand     func() uint64
	ctr      *counters // carried from picker to picker
	clock    *clock    // the Core's clock, for slow start and PeakEWMA
	ss       slowStart // the slow start configuration
	ramping  bool      // some backend is in its slow start
	landed   uint64    // the Core's growths landed when it published this picker

	zones *zonePickers // zone-aware routing: the pickers per zone; nil when off
	zone  *zoneState   // a zone's picker: its zone
}

type pickBackend struct {
	b       *Backend
	weight  int64
	inv     int64 // 2^32 / weight: LeastActive's load per unit of weight is load × inv
	conns   []*Conn
	off     uint32 // where its connection rotation starts
	canGrow bool   // below its maximum size and not backing off a failed growth
	growing bool   // a connection is being added to it
	bypass  bool   // its breaker is open but ejection is capped: calls skip the breaker
	rampAt  int64  // slow start: the clock time it became ready; 0: no ramp
}

// GrowthsLanded is how many growths had landed when the Core published p:
// connections it added to full backends (Grow) that became Ready. A call
// that waits for a growth (WaitGrowth) and sees it change lost a new
// connection to other calls, and bounds its wait for the next growth
// anew; growths that begin, or fail, change nothing, so a growth that
// hangs is not waited for longer because another backend's growths fail
// and begin again after each backoff.
func (p *Picker) GrowthsLanded() uint64 { return p.landed }

// Changed is closed when a newer picker has been published.
func (p *Picker) Changed() <-chan struct{} { return p.changed }

// Stale reports whether a newer picker has been published.
func (p *Picker) Stale() bool {
	select {
	case <-p.changed:
		return true
	default:
		return false
	}
}

// Ready reports whether some backend can take calls.
func (p *Picker) Ready() bool { return len(p.backends) > 0 }

// Wait reports whether, with nothing to pick, calls should wait (the pool is
// starting) rather than fail.
func (p *Picker) Wait() bool { return p.wait }

// Err is the status calls fail with when nothing can take them.
func (p *Picker) Err() error { return p.err }

// next makes q the successor of p: it takes over p's counters and its
// policy value (which Flush then builds q's from). p's Changed is closed
// by install.
func (p *Picker) next(q *Picker) *Picker {
	q.changed = make(chan struct{})
	if p != nil {
		q.policy, q.pol, q.rand, q.ctr, q.clock, q.ss = p.policy, p.pol, p.rand, p.ctr, p.clock, p.ss
	}
	return q
}

// install publishes q, the successor of prev (nil for the first picker),
// and only then closes prev's Changed: a call it wakes finds q.
func (k *Core) install(prev, q *Picker) {
	k.picker = q
	k.seam.Publish(q)
	if prev != nil {
		close(prev.changed)
	}
}

// publish marks the pickers stale; Flush builds and publishes the next
// one. Events that arrive together (a batch the pool applies under one
// lock) thus cost one picker, not one each.
func (k *Core) publish() { k.stale = true }

// Flush publishes a new picker if anything changed since the last one. The
// caller calls it after every event or batch of events.
func (k *Core) Flush() {
	if k.closed || !k.stale {
		return
	}
	k.stale = false
	prev := k.picker
	q := &Picker{}
	if prev == nil {
		q.policy, q.pol, q.rand, q.ctr = k.cfg.Policy, newPolicy(k.cfg, k.ctr, k.clock), k.cfg.Rand, k.ctr
		q.clock, q.ss = k.clock, k.slowStart()
	}
	k.eject()
	warm := k.anyWarm()
	q.backends = make([]*pickBackend, 0, len(k.order))
	var sd seeder
	for _, b := range k.order {
		if b.dirty {
			b.pb, b.dirty = k.entry(b, warm), false
			sd.seed(k, b)
			b.entry.Store(b.pb)
		}
		if pb := b.pb; pb != nil {
			q.backends = append(q.backends, pb)
			q.ramping = q.ramping || pb.rampAt != 0
		}
	}
	q = prev.next(q)
	q.landed = k.landed
	if len(q.backends) == 0 {
		var w why
		for _, b := range k.order {
			for _, c := range b.conns {
				w.conn(c)
			}
			if b.BreakerState() == breaker.StateOpen && b.ejected {
				w.open++
			} else {
				w.backend(b)
			}
		}
		q.wait, q.err = k.whyEmpty(&w)
	} else if k.cfg.Zone != "" {
		k.buildZones(q)
	} else {
		q.pol = q.pol.next(q, k.order, k.ringGen)
	}
	k.install(prev, q)
}

// entry builds b's entry in the pickers, nil when b can take no call.
// Entries are shared by successive pickers until b changes, so the cost of
// a change is that of the backend it touches, and round-robin counters
// carry over.
func (k *Core) entry(b *Backend, warm bool) *pickBackend {
	open := b.BreakerState() == breaker.StateOpen
	if open && b.ejected {
		return nil
	}
	var conns []*Conn
	for _, c := range b.conns {
		if c.state == Ready {
			conns = append(conns, c)
		}
	}
	if len(conns) == 0 {
		return nil
	}
	pb := &pickBackend{b: b, weight: int64(b.weight), inv: (1 << 32) / int64(b.weight), conns: conns}
	pb.canGrow = liveCount(b) < k.cfg.MaxSize && b.growing == nil && !k.at.Before(b.growAfter)
	pb.growing = b.growing != nil
	pb.bypass = open
	pb.off = uint32(k.cfg.Rand())
	k.ramp(b, pb, warm)
	return pb
}

// why counts, for the message of a picker with nothing to pick, what each
// backend and connection is doing.
type why struct {
	open, starting, notServing, failing, connecting int // backends
	conns, connsFailing                             int
	lastErr                                         error
}

func (w *why) conn(c *Conn) {
	if !c.state.Live() {
		return
	}
	w.conns++
	if c.state == Failing {
		w.connsFailing++
	}
	if c.lastErr != nil {
		w.lastErr = c.lastErr
	}
}

// backend classifies a backend with no ready connection by its most
// hopeful connection.
func (w *why) backend(b *Backend) {
	best := Closed
	for _, c := range b.conns {
		if !c.state.Live() {
			continue
		}
		if rank(c.state) < rank(best) {
			best = c.state
		}
	}
	switch best {
	case Starting:
		w.starting++
	case NotServing:
		w.notServing++
	case Failing:
		w.failing++
	default:
		w.connecting++
	}
}

func rank(s State) int {
	switch s {
	case Ready:
		return 0
	case Starting:
		return 1
	case Connecting:
		return 2
	case NotServing:
		return 3
	case Failing:
		return 4
	}
	return 5
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// whyEmpty says why no backend can take a call: calls wait while the pool
// is starting (first resolution, first connection attempts), and fail at
// once with codes.Unavailable naming the cause otherwise.
func (k *Core) whyEmpty(w *why) (bool, error) {
	n := len(k.order)
	switch {
	case !k.resolved:
		return true, nil
	case n == 0:
		return false, status.Errorf(codes.Unavailable, "%s %q%s", MsgNoAddresses, k.cfg.Target, resolverErr(k.resErr))
	case w.starting > 0:
		return true, nil
	case w.open == n:
		return false, status.Errorf(codes.Unavailable, "%s (%d of %d)", MsgAllOpen, w.open, n)
	}
	var parts []string
	if w.open > 0 {
		parts = append(parts, plural(w.open, "backend")+" with an open circuit breaker")
	}
	if w.notServing > 0 {
		parts = append(parts, plural(w.notServing, "backend")+" not serving (health check)")
	}
	if w.failing > 0 {
		parts = append(parts, plural(w.failing, "backend")+" failing to connect")
	}
	if w.connecting > 0 {
		parts = append(parts, plural(w.connecting, "backend")+" connecting")
	}
	msg := fmt.Sprintf("%s to any of %s of %q: %s", MsgNotReady, plural(n, "backend"), k.cfg.Target, strings.Join(parts, ", "))
	if w.lastErr != nil {
		msg += "; last connection error: " + w.lastErr.Error()
	}
	return false, status.Error(codes.Unavailable, msg+resolverErr(k.resErr))
}

func resolverErr(err error) string {
	if err == nil {
		return ""
	}
	return fmt.Sprintf(" (last resolver error: %v)", err)
}
