package integration

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/integration/harness"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// waitLong bounds the waits for things that take a resolve interval, a
// connection age or a lease TTL plus a margin for a loaded CI machine.
const waitLong = 20 * time.Second

// fleet is a set of Echo backends, each named by its address.
type fleet struct {
	addrs   []string
	servers map[string]*backend.Server
}

// startFleet starts one Echo backend on each addr ("host:port"), stopped in
// t.Cleanup.
func startFleet(t *testing.T, addrs ...string) *fleet {
	t.Helper()
	f := &fleet{addrs: slices.Clone(addrs), servers: make(map[string]*backend.Server)}
	for i, s := range testutil.StartBackendsAt(t, addrs...) {
		f.servers[addrs[i]] = s
	}
	return f
}

// sameLoopbackPort returns "127.0.0.<first+i>:P" for i < n, with one port P
// free on all of them: the shape of a DNS name or a VIP pool whose members
// all serve on the same port.
func sameLoopbackPort(t *testing.T, first, n int) []string {
	t.Helper()
	hosts := harness.LoopbackHosts(first, n)
	port := strconv.Itoa(harness.FreePort(t, hosts...))
	addrs := make([]string, n)
	for i, h := range hosts {
		addrs[i] = net.JoinHostPort(h, port)
	}
	return addrs
}

func hostsOf(addrs []string) []string {
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i], _, _ = net.SplitHostPort(a)
	}
	return out
}

// active returns each backend's open streams, as the servers count them.
func (f *fleet) active(addrs []string) []int64 {
	out := make([]int64, len(addrs))
	for i, a := range addrs {
		out[i] = f.servers[a].ActiveStreams()
	}
	return out
}

// unary returns each backend's unary calls received so far.
func (f *fleet) unary(addrs []string) []int64 {
	out := make([]int64, len(addrs))
	for i, a := range addrs {
		out[i] = f.servers[a].Unary()
	}
	return out
}

// waitActive waits until the backends addrs carry want open streams in all.
func (f *fleet) waitActive(t *testing.T, addrs []string, want int64) []int64 {
	t.Helper()
	var got []int64
	harness.Eventually(t, waitLong, fmt.Sprintf("servers to count %d open streams", want), func() error {
		got = f.active(addrs)
		if s := testutil.Sum(got); s != want {
			return fmt.Errorf("open streams %v (sum %d), want sum %d", got, s, want)
		}
		return nil
	})
	return got
}

// figures formats per-backend counts and their max/mean for t.Logf.
func figures(addrs []string, counts []int64) string {
	var b strings.Builder
	for i, a := range addrs {
		fmt.Fprintf(&b, "%s=%d ", a, counts[i])
	}
	fmt.Fprintf(&b, "max/mean=%.2f", backend.MaxOverMean(counts))
	return b.String()
}

// newPool makes a pool over plaintext loopback and waits until it is ready;
// it is closed in t.Cleanup.
func newPool(t *testing.T, target string, opts ...pool.Option) *pool.Pool {
	t.Helper()
	p := testutil.NewPool(t, target, opts...)
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("pool.Close: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if err := p.WaitForReady(ctx); err != nil {
		t.Fatalf("pool %q: WaitForReady: %v", target, err)
	}
	return p
}

// waitReadyConns waits until the pool has, for every address of want, at
// least want[addr] ready connections, and no backend but those.
func waitReadyConns(t *testing.T, p *pool.Pool, want map[string]int) time.Duration {
	t.Helper()
	return harness.Eventually(t, waitLong, fmt.Sprintf("pool ready on %v", want), func() error {
		got := map[string]int{}
		for _, b := range p.Stats().Backends {
			if !b.Removed {
				got[b.Addr] = b.Ready
			}
		}
		for a, n := range want {
			if got[a] < n {
				return fmt.Errorf("ready connections %v, want %v", got, want)
			}
		}
		for a := range got {
			if _, ok := want[a]; !ok {
				return fmt.Errorf("ready connections %v: %s is not wanted", got, a)
			}
		}
		return nil
	})
}

// load is a steady stream of unary calls from a few workers, each paced by
// a ticker. It stops on Stop, in t.Cleanup, or after loadMax at the latest.
type load struct {
	ok, failed atomic.Int64

	mu   sync.Mutex // guards errs
	errs []error    // the first few failures

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

const (
	loadWorkers = 4
	loadEvery   = 5 * time.Millisecond
	loadMax     = 3 * time.Minute
	callTimeout = 5 * time.Second
)

func startLoad(t *testing.T, cc grpc.ClientConnInterface) *load {
	t.Helper()
	c := echopb.NewEchoClient(cc)
	l := &load{stop: make(chan struct{})}
	deadline := time.After(loadMax)
	for w := range loadWorkers {
		l.wg.Go(func() {
			tick := time.NewTicker(loadEvery)
			defer tick.Stop()
			for {
				select {
				case <-l.stop:
					return
				case <-deadline:
					return
				case <-tick.C:
				}
				ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
				_, err := c.Unary(ctx, &echopb.EchoRequest{Message: fmt.Sprint("w", w)})
				cancel()
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.errs) < 5 {
						l.errs = append(l.errs, err)
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		})
	}
	t.Cleanup(l.Stop)
	return l
}

// Stop ends the load and waits for its workers. It is idempotent.
func (l *load) Stop() {
	l.stopOnce.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// check fails the test if any call failed.
func (l *load) check(t *testing.T, during string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("unary load %s: %d ok, %d failed", during, l.ok.Load(), l.failed.Load())
	if n := l.failed.Load(); n != 0 {
		t.Errorf("unary calls failed %s: got %d, want 0; first errors: %v", during, n, l.errs)
	}
}

// waitMoreUnary waits until the backends addrs together received at least
// n more unary calls than they had when it was called: a bounded way to let
// the load run for a while.
func (f *fleet) waitMoreUnary(t *testing.T, addrs []string, n int64) {
	t.Helper()
	base := testutil.Sum(f.unary(addrs))
	harness.Eventually(t, waitLong, fmt.Sprintf("%d more unary calls on %v", n, addrs), func() error {
		if got := testutil.Sum(f.unary(addrs)) - base; got < n {
			return fmt.Errorf("%d more calls", got)
		}
		return nil
	})
}

// waitGone waits until the pool no longer sends new calls to addr: it is
// either gone from Stats or listed as removed.
func waitGone(t *testing.T, p *pool.Pool, addr string) {
	t.Helper()
	harness.Eventually(t, waitLong, "pool to retire "+addr, func() error {
		if b, ok := testutil.Find(p, addr); ok && !b.Removed {
			return fmt.Errorf("%s still resolved: ready %d", addr, b.Ready)
		}
		return nil
	})
}

// expectNoMoreUnary checks that gone, just retired by the pool, gets no
// more calls: it lets calls picked before the retirement arrive (50 calls
// on others), then lets the load put 300 more calls on others and checks
// that gone got none of them.
func (f *fleet) expectNoMoreUnary(t *testing.T, gone string, others []string) {
	t.Helper()
	f.waitMoreUnary(t, others, 50)
	before := f.servers[gone].Unary()
	f.waitMoreUnary(t, others, 300)
	if n := f.servers[gone].Unary() - before; n != 0 {
		t.Errorf("unary calls on %s after it left the registry: got %d, want 0", gone, n)
	}
}
