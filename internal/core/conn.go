package core

import (
	"sync/atomic"
	"time"

	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/breaker"
)

// Hot holds a connection's counters that calls change on the hot path. It
// is safe for concurrent use; the core reads it, calls write it.
type Hot struct {
	word  atomic.Int64  // the calls and streams on it, and retiredBit once it is retired
	uses  atomic.Uint64 // times it went from idle to busy
	open  atomic.Int64  // streams past NewStream: what the server admitted
	limit atomic.Int64  // known stream limit; 0: none known
}

// retiredBit marks a retired connection in Hot.word. The count of calls
// and the mark share one word, so a call is placed (Acquire) and the
// connection retired (Hot.retire) in one order every reader agrees on: a
// call placed before the mark is counted by the retirement, one after it
// is refused without ever having been counted.
const retiredBit = 1 << 62

// Active returns the calls and streams the connection carries.
func (h *Hot) Active() int64 { return h.word.Load() &^ retiredBit }

// Limit returns the connection's known stream limit, 0 when none is known.
func (h *Hot) Limit() int64 { return h.limit.Load() }

// Full reports whether the connection carries as many calls as it may.
func (h *Hot) Full() bool {
	l := h.limit.Load()
	return l > 0 && h.Active() >= l
}

// Retired reports whether the connection was retired: it takes no new
// call.
func (h *Hot) Retired() bool { return h.word.Load()&retiredBit != 0 }

// Acquire places a call on the connection. It fails, leaving nothing
// counted, once the connection is retired.
func (h *Hot) Acquire() bool { return h.acquire(0) }

// AcquireWithin is Acquire that also fails when the connection carries its
// known limit.
func (h *Hot) AcquireWithin() bool { return h.acquire(h.limit.Load()) }

// acquire counts a call on the connection unless it is retired or carries
// limit calls (limit 0: no limit). A concurrent change of the count only
// makes it look again, so it fails only on a connection that was full or
// retired at one instant.
func (h *Hot) acquire(limit int64) bool {
	for {
		v := h.word.Load()
		if v&retiredBit != 0 || limit > 0 && v >= limit {
			return false
		}
		if h.word.CompareAndSwap(v, v+1) {
			if v == 0 {
				// Counted only when the connection goes from idle to
				// busy, which is all the idle shrink needs.
				h.uses.Add(1)
			}
			return true
		}
	}
}

// retire marks the connection retired and returns the calls it carried
// at that instant: when 0, nothing will release it, and the core closes
// it; otherwise the Release that ends its last call reports it drained.
func (h *Hot) retire() int64 { return h.word.Or(retiredBit) &^ retiredBit }

// Release ends a call placed by Acquire. It reports whether that left a
// retired connection with nothing in flight: the caller then tells the
// core (Core.Drained).
func (h *Hot) Release() (drained bool) {
	return h.word.Add(-1) == retiredBit
}

// Release ends a call placed by Acquire, after the caller took it off its
// backend's load: see Hot.Release. With LeastActive it also lowers the
// fleet's load floor when the backend now carries less than it.
func (c *Conn) Release() (drained bool) {
	d := c.Hot.Release()
	c.Backend.released()
	return d
}

// StreamOpened and StreamEnded count streams the server admitted.
func (h *Hot) StreamOpened()      { h.open.Add(1) }
func (h *Hot) StreamEnded()       { h.open.Add(-1) }
func (h *Hot) OpenStreams() int64 { return h.open.Load() }

// A Conn is one connection of a backend. Its Hot counters are safe for
// concurrent use; every other field belongs to the Core and is read and
// written only by it (the caller serialises the Core's methods).
type Conn struct {
	Hot
	ID      uint64
	Backend *Backend
	// Handle is the seam's: whatever it needs to find its connection
	// (the pool's *grpc.ClientConn wrapper, a test's fake). Set in Dial.
	Handle any

	state     State
	transport connectivity.State
	serving   bool // with health checking: the last report said SERVING
	reported  bool // with health checking: a report came since the transport last became READY
	settled   bool // its first attempt ended
	created   time.Time
	lastErr   error
	why       string // why it was retired

	replaces  *Conn // the connection this one replaces (a recycle), until it is Ready
	grow      bool  // added on demand past the size floor
	idleSince time.Time
	idleUses  uint64

	ageTimer, drainTimer, healthTimer, replaceTimer stopper
}

// State returns the connection's effective state.
func (c *Conn) State() State { return c.state }

// Transport returns the last connectivity state its connection reported.
func (c *Conn) Transport() connectivity.State { return c.transport }

// Created is when the connection was dialed.
func (c *Conn) Created() time.Time { return c.created }

// LastErr is the last error its connection reported, nil after it was
// READY.
func (c *Conn) LastErr() error { return c.lastErr }

// Why is why the connection was retired ("" while it is not).
func (c *Conn) Why() string { return c.why }

// BackendHot holds a backend's counters that calls change on the hot path.
// It is safe for concurrent use.
type BackendHot struct {
	Calls    atomic.Int64  // unary calls in flight
	Streams  atomic.Int64  // streams open
	Started  atomic.Uint64 // attempts of calls and streams placed on it
	Ended    atomic.Uint64 // logical calls and streams whose last attempt it took
	Failures atomic.Uint64 // calls and streams that ended in a backend failure
	WarmFail atomic.Uint64 // warm-ups of its connections that failed (the pool's WithWarmup; not hot)
	brkState atomic.Int32  // breaker.State the pickers act on
	growReq  atomic.Bool   // a pick asked the core to grow the backend
	gone     atomic.Bool   // removed, and its last connection closed
	over     atomic.Bool   // LastCallEnded has said so

	least *leastShared                // LeastActive: the fleet's load floor; nil otherwise
	entry atomic.Pointer[pickBackend] // its entry in the newest picker; nil when none
	ewma  latency                     // PeakEWMA: the latency estimate
}

// Load returns the calls and streams the backend carries.
func (h *BackendHot) Load() int64 { return h.Calls.Load() + h.Streams.Load() }

// Gone reports whether the backend was removed and its last connection
// closed: it takes no call again, though calls a drain timeout cut may
// still be ending.
func (h *BackendHot) Gone() bool { return h.gone.Load() }

// LastCallEnded reports, to exactly one caller, that the backend is gone
// and nothing is in flight on it any more. The core's observer asks when
// the backend's last connection closes, and the pool when each call on it
// ends, once it has taken the call off the backend's load and recorded
// all it records of it: whichever comes last is told.
func (h *BackendHot) LastCallEnded() bool {
	return h.gone.Load() && h.Load() == 0 && !h.over.Load() && h.over.CompareAndSwap(false, true)
}

// BreakerState returns the breaker state the pickers act on.
func (h *BackendHot) BreakerState() breaker.State { return breaker.State(h.brkState.Load()) }

// StoreBreakerState records the state the backend's breaker entered. The
// breaker's change callback calls it at once, on the call's goroutine, so
// Stats and the next pick agree with the breaker before Core.BreakerChanged
// (queued) rebuilds the pickers and arms the probe timer.
func (h *BackendHot) StoreBreakerState(s breaker.State) { h.brkState.Store(int32(s)) }

// A Backend is one resolved address (or endpoint) and its connections.
// Key, Addrs, Zone and Breaker do not change after it is created; Weight and the
// unexported fields belong to the Core.
type Backend struct {
	BackendHot
	Key     string
	Addrs   []resolver.Address
	Breaker *breaker.Breaker // nil without breakers
	Zone    string           // its zone as first resolved; "" when unknown
	weight  uint32
	zone    *zoneState // zone-aware routing: its zone's state; nil when off

	conns     []*Conn
	removed   bool  // no longer resolved: its connections drain
	recycling *Conn // the connection being replaced (one at a time)
	growing   *Conn // the connection being added on demand
	growFails int
	growAfter time.Time // no growth before it: the last one failed

	limit      int64 // learned stream limit; 0: none
	stallN     int64 // open streams at the last stall not yet confirmed
	stallAt    time.Time
	stallCall  uint64 // the call of that stall
	limitTimer stopper
	probeTimer stopper

	readySince time.Time // when it last went from no READY connection to one; zero while none
	ejected    bool      // its open breaker takes it out of the pickers (see Config.MaxEjectPercent)
	rampTimer  stopper   // touches it when its slow start ends
	warnedAt   time.Time // the last warning about its connections
	unwarned   int       // state changes since then not logged at warn level

	pb    *pickBackend // its entry in the pickers; nil when it takes no call
	dirty bool         // pb is out of date
}

// Addr is the backend's address as Stats reports it.
func (b *Backend) Addr() string { return b.Addrs[0].Addr }

// Weight returns the backend's weight (1 unless its address carries one).
func (b *Backend) Weight() uint32 { return b.weight }

// Conns returns the backend's connections, retired ones included, in the
// order they were made. The slice belongs to the Core: read it only where
// the Core's methods are serialised.
func (b *Backend) Conns() []*Conn { return b.conns }

// Growing reports whether a connection is being added to the backend
// because its connections were all full (Grow): calls that found them so
// wait for it. Read it only where the Core's methods are serialised.
func (b *Backend) Growing() bool { return b.growing != nil }

// Removed reports whether the backend is no longer resolved.
func (b *Backend) Removed() bool { return b.removed }

// Limit returns the backend's stream limit per connection, learned or
// configured (configured is passed in), 0 when none is known.
func (b *Backend) Limit() int64 { return b.limit }
