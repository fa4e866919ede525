package core

import (
	"testing"
	"time"

	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/internal/coretest/record"
)

// fakeSeam is the package-internal face of coretest's fake seam (which
// this package's tests cannot import): the recording and the timers are
// record.Seam's; k is the Core it drives.
type fakeSeam struct {
	record.Seam[*Conn, *Picker]
	k     *Core
	dials []*Conn
}

func (f *fakeSeam) Dial(c *Conn) { f.dials = append(f.dials, c) }

func (f *fakeSeam) After(d time.Duration, t Timer) func() bool {
	return f.AfterFunc(d, func(now time.Time) {
		f.k.Fire(now, t)
		f.k.Flush()
	})
}

// newFake returns a Core over a fake seam, its decisions exact.
func newFake(t *testing.T, cfg Config) *fakeSeam {
	t.Helper()
	rand, jitter := record.Exact()
	if cfg.Rand == nil {
		cfg.Rand = rand
	}
	cfg.Jitter = jitter
	cfg.Target = "fake:///test"
	f := &fakeSeam{}
	f.Lock()
	f.k = New(cfg, f)
	f.Unlock()
	return f
}

// do runs fn on the Core with the seam's lock held, as the pool's event
// goroutine does.
func (f *fakeSeam) do(fn func(k *Core, now time.Time)) {
	f.Lock()
	defer f.Unlock()
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
	f.Lock()
	defer f.Unlock()
	return f.k.backends[key]
}

// states returns the states of b's connections.
func (f *fakeSeam) states(b *Backend) []State {
	f.Lock()
	defer f.Unlock()
	var s []State
	for _, c := range b.conns {
		s = append(s, c.state)
	}
	return s
}

func (f *fakeSeam) picker() *Picker {
	f.Lock()
	defer f.Unlock()
	return f.k.Picker()
}
