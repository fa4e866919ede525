package core

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
)

// fakeSeam stands in for real connections: it records what the Core asks
// for, and runs the Core's timers on the clock of the synctest bubble the
// test runs in.
type fakeSeam struct {
	mu       sync.Mutex // guards the Core and the fields below, as Pool.mu does
	k        *Core
	dials    []*Conn
	closes   []*Conn
	connects int
	resolves int
}

func (f *fakeSeam) Dial(c *Conn)    { f.dials = append(f.dials, c) }
func (f *fakeSeam) Connect(*Conn)   { f.connects++ }
func (f *fakeSeam) Close(c *Conn)   { f.closes = append(f.closes, c) }
func (f *fakeSeam) Publish(*Picker) {}
func (f *fakeSeam) ResolveNow()     { f.resolves++ }
func (f *fakeSeam) After(d time.Duration, t Timer) func() bool {
	tm := time.AfterFunc(d, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.k.Fire(time.Now(), t)
		f.k.Flush()
	})
	return tm.Stop
}

// newFake returns a Core over a fake seam. Jitter is off and randomness
// fixed, so every decision is exact.
func newFake(t *testing.T, cfg Config) *fakeSeam {
	t.Helper()
	f := &fakeSeam{}
	cfg.Jitter = func(d time.Duration) time.Duration { return d }
	if cfg.Rand == nil {
		var n uint64
		cfg.Rand = func() uint64 { n++; return n * 0x9E3779B97F4A7C15 }
	}
	cfg.Target = "fake:///test"
	f.mu.Lock()
	f.k = New(cfg, f)
	f.mu.Unlock()
	return f
}

// do runs fn on the Core with the seam's lock held, as the pool's event
// goroutine does.
func (f *fakeSeam) do(fn func(k *Core, now time.Time)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.k, time.Now())
	f.k.Flush()
}

func groupsOf(keys ...string) []Group {
	gs := make([]Group, len(keys))
	for i, k := range keys {
		gs[i] = Group{Key: k, Addrs: []resolver.Address{{Addr: k}}, Weight: 1}
	}
	return gs
}

// ready reports every connection not yet READY as READY.
func (f *fakeSeam) readyAll() {
	f.do(func(k *Core, now time.Time) {
		for _, b := range k.Backends() {
			for _, c := range b.Conns() {
				if c.Transport() != connectivity.Ready && c.State().Live() {
					k.ConnState(now, c, connectivity.Ready, nil)
				}
			}
		}
	})
}

func (f *fakeSeam) backend(key string) *Backend {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.k.backends[key]
}

// states returns the states of b's connections.
func (f *fakeSeam) states(b *Backend) []State {
	f.mu.Lock()
	defer f.mu.Unlock()
	var s []State
	for _, c := range b.conns {
		s = append(s, c.state)
	}
	return s
}

func (f *fakeSeam) picker() *Picker {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.k.Picker()
}

func count(ss []State, s State) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

func requireStates(t *testing.T, f *fakeSeam, b *Backend, want ...State) {
	t.Helper()
	require.Equal(t, want, f.states(b))
}
