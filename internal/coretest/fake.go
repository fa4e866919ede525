// Package coretest is the decision core's fake seam, for the tests of
// every layer built on the core (grpc-go's testutils.BalancerClientConn
// and httplb's balancertesting are the models).
//
// A Fake stands in for real connections: it records every dial, close,
// reconnect, resolution and published picker, and runs the core's timers
// on the clock of the testing/synctest bubble the test runs in, so that
// decisions over minutes of time are exact and take no wall-clock time.
// The core's randomness is fixed and its jitter off.
//
//	synctest.Test(t, func(t *testing.T) {
//		f := coretest.New(t, core.Config{Size: 2})
//		f.Do(func(k *core.Core, now time.Time) { k.Resolved(now, coretest.Groups("a", "b")) })
//		f.ReadyAll()
//		p, err := f.WaitForPicker(ctx, (*core.Picker).Ready)
//		…
//	})
package coretest

import (
	"testing"
	"time"

	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/coretest/record"
)

// Fake is a core.Seam that records what its Core asks for. Drive the Core
// with Do, as the pool's event goroutine does; the recording accessors
// (Dials, Closes, Connects, Resolves, Published, WaitForPicker) come from
// record.Seam. It is safe for concurrent use under record.Seam's rules.
type Fake struct {
	record.Seam[*core.Conn, *core.Picker]
	core *core.Core
}

var _ core.Seam = (*Fake)(nil)

// New returns a Fake driving a new Core built from cfg, with cfg's
// randomness fixed (unless set) and its jitter off.
func New(tb testing.TB, cfg core.Config) *Fake {
	tb.Helper()
	rand, jitter := record.Exact()
	if cfg.Rand == nil {
		cfg.Rand = rand
	}
	cfg.Jitter = jitter
	if cfg.Target == "" {
		cfg.Target = "fake:///test"
	}
	f := &Fake{}
	f.Lock()
	f.core = core.New(cfg, f)
	f.Unlock()
	return f
}

// After runs the timer t on the Core after d of the bubble's time.
func (f *Fake) After(d time.Duration, t core.Timer) func() bool {
	return f.AfterFunc(d, func(now time.Time) {
		f.core.Fire(now, t)
		f.core.Flush()
	})
}

// Do runs fn on the Core with the lock held, then publishes what changed.
func (f *Fake) Do(fn func(k *core.Core, now time.Time)) {
	f.Lock()
	defer f.Unlock()
	fn(f.core, time.Now())
	f.core.Flush()
}

// Resolve reports a resolution of one backend a key (with the address
// key and weight 1), then every live connection READY.
func (f *Fake) Resolve(keys ...string) {
	f.Do(func(k *core.Core, now time.Time) { k.Resolved(now, Groups(keys...)) })
	f.ReadyAll()
}

// ReadyAll reports every live connection not yet READY as READY.
func (f *Fake) ReadyAll() {
	f.Do(func(k *core.Core, now time.Time) {
		for _, b := range k.Backends() {
			for _, c := range b.Conns() {
				if c.Transport() != connectivity.Ready && c.State().Live() {
					k.ConnState(now, c, connectivity.Ready, nil)
				}
			}
		}
	})
}

// Backend returns the backend of key, resolved or draining; nil if none.
func (f *Fake) Backend(key string) *core.Backend {
	f.Lock()
	defer f.Unlock()
	for _, b := range f.core.Backends() {
		if b.Key == key {
			return b
		}
	}
	return nil
}

// Conns returns b's connections.
func (f *Fake) Conns(b *core.Backend) []*core.Conn {
	f.Lock()
	defer f.Unlock()
	return append([]*core.Conn(nil), b.Conns()...)
}

// States returns the states of b's connections, in order.
func (f *Fake) States(b *core.Backend) []core.State {
	f.Lock()
	defer f.Unlock()
	var s []core.State
	for _, c := range b.Conns() {
		s = append(s, c.State())
	}
	return s
}

// Picker returns the Core's current picker.
func (f *Fake) Picker() *core.Picker {
	f.Lock()
	defer f.Unlock()
	return f.core.Picker()
}

// Groups returns one group a key, with the address key and weight 1.
func Groups(keys ...string) []core.Group {
	gs := make([]core.Group, len(keys))
	for i, k := range keys {
		gs[i] = core.Group{Key: k, Addrs: []resolver.Address{{Addr: k}}, Weight: 1}
	}
	return gs
}

// Count returns how many of ss are s.
func Count(ss []core.State, s core.State) int {
	n := 0
	for _, x := range ss {
		if x == s {
			n++
		}
	}
	return n
}

// Keys returns the keys of the Core's backends: the resolved ones in
// resolver order, then the removed ones still draining.
func (f *Fake) Keys() []string {
	f.Lock()
	defer f.Unlock()
	var keys []string
	for _, b := range f.core.Backends() {
		keys = append(keys, b.Key)
	}
	return keys
}

// Live returns how many of b's connections are live (not draining or
// closed).
func (f *Fake) Live(b *core.Backend) int {
	n := 0
	for _, s := range f.States(b) {
		if s.Live() {
			n++
		}
	}
	return n
}
