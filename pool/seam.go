package pool

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/internal/core"
)

// The pool implements the decision core's seam over grpc.ClientConn. The
// core runs under Pool.mu; everything that reaches it from elsewhere — a
// connection's state change reported on grpc's own goroutine, a health
// report, a timer, a pick asking for growth, a drain ending — is queued as
// an event and applied by the pool's one event goroutine, so nothing that
// grpc calls ever waits for Pool.mu.

// pconn is the pool's side of one connection: the core's Conn and the
// grpc.ClientConn behind it.
type pconn struct {
	p  *Pool
	c  *core.Conn
	cc *grpc.ClientConn

	// Guarded by Pool.mu.
	healthCancel context.CancelFunc // ends the running health watch

	warm warmer // with WithWarmup (warmup.go)
}

type pconnKey struct{}

func handle(c *core.Conn) *pconn { return c.Handle.(*pconn) }

// stateChanged is called by the leaf balancer, on grpc's goroutine.
func (pc *pconn) stateChanged(s connectivity.State, err error) {
	if pc.p.o.warmup != nil {
		pc.warmState(s, err)
		return
	}
	pc.report(s, err)
}

// report queues a state of pc's connection for the core.
func (pc *pconn) report(s connectivity.State, err error) {
	pc.p.events.push(func(now time.Time) {
		pc.p.core.ConnState(now, pc.c, s, err)
		pc.followHealthLocked()
	})
}

// seam is the core.Seam of a Pool.
type seam struct{ p *Pool }

func (s seam) Dial(c *core.Conn) {
	p := s.p
	pc := &pconn{p: p, c: c}
	c.Handle = pc
	b := c.Backend
	addrs := make([]resolver.Address, len(b.Addrs))
	copy(addrs, b.Addrs)
	dos := p.connDialOptions(staticBuilder{addrs: addrs, authority: p.authority, attrs: attributes.New(pconnKey{}, pc)})
	cc, err := grpc.NewClient(p.target, dos...)
	if err != nil {
		// Dial options were checked in New; report the connection as
		// failing rather than leave it starting.
		p.log.Error("grpcpool: cannot create connection", "target", p.target, "addr", b.Addr(), "err", err)
		p.events.push(func(now time.Time) { p.core.ConnState(now, c, connectivity.TransientFailure, err) })
		return
	}
	pc.cc = cc
	cc.Connect()
}

func (s seam) Connect(c *core.Conn) {
	if pc := handle(c); pc.cc != nil {
		pc.cc.Connect()
	}
}

func (s seam) Close(c *core.Conn) {
	pc := handle(c)
	if pc.healthCancel != nil {
		pc.healthCancel()
		pc.healthCancel = nil
	}
	pc.stopWarmup()
	if pc.cc != nil {
		s.p.goAsync(func() { _ = pc.cc.Close() })
	}
}

func (s seam) Publish(q *core.Picker) { s.p.picker.Store(q) }

func (s seam) ResolveNow() { s.p.resolution.soon(s.p.goAsync) }

func (s seam) After(d time.Duration, t core.Timer) func() bool {
	p := s.p
	tm := time.AfterFunc(d, func() {
		p.events.push(func(now time.Time) { p.core.Fire(now, t) })
	})
	return tm.Stop
}

// events is the pool's queue of core events: push never blocks, and one
// goroutine applies them in order under Pool.mu.
type events struct {
	mu     sync.Mutex // guards q and done
	q      []func(time.Time)
	done   bool
	wake   chan struct{}
	poolMu *sync.Mutex
	flush  func() // publishes the core's picker after a batch; called with poolMu held
}

func (e *events) push(f func(time.Time)) {
	e.mu.Lock()
	if e.done {
		e.mu.Unlock()
		return
	}
	e.q = append(e.q, f)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// run applies events until stop.
func (e *events) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			e.mu.Lock()
			e.done, e.q = true, nil
			e.mu.Unlock()
			return
		case <-e.wake:
		}
		for {
			e.mu.Lock()
			q := e.q
			e.q = nil
			e.mu.Unlock()
			if len(q) == 0 {
				break
			}
			e.poolMu.Lock()
			for _, f := range q {
				f(time.Now())
			}
			e.flush()
			e.poolMu.Unlock()
		}
	}
}
