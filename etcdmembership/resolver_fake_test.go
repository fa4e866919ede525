package etcdmembership

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	"google.golang.org/grpc/resolver"

	"github.com/grpcpool/grpcpool/pool"
)

// recordingCC is a resolver.ClientConn that records what it is told.
type recordingCC struct {
	resolver.ClientConn // never called
	mu                  sync.Mutex
	states              []resolver.State
	errs                []error
}

func (c *recordingCC) UpdateState(s resolver.State) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.states = append(c.states, s)
	return nil
}

func (c *recordingCC) ReportError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, err)
}

// last returns the number of states reported and the last one as
// "addr@zone" strings.
func (c *recordingCC) last() (int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.states) == 0 {
		return 0, nil
	}
	return len(c.states), zoned(c.states[len(c.states)-1].Addresses)
}

func (c *recordingCC) errors() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.errs)
}

// zoned renders addresses as "addr@zone".
func zoned(as []resolver.Address) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Addr + "@" + pool.AddressZone(a)
	}
	return out
}

// step is one call of a fake NewWatchChannel.
type step = func(ctx context.Context) (endpoints.WatchChannel, error)

// startFake starts a resolver over a fakeWatch running script, with no
// jitter; it is closed at cleanup.
func startFake(t *testing.T, script ...step) (*endpointsResolver, *recordingCC, *fakeWatch) {
	f := &fakeWatch{script: script}
	cc := &recordingCC{}
	r := startEndpointsResolver(cc, f.newWatch, half)
	t.Cleanup(r.Close)
	return r, cc, f
}

// fakeWatch stands in for an endpoints manager's NewWatchChannel: the
// i-th call runs script[i] (the last one again once the script is used
// up), and every call's time is recorded.
type fakeWatch struct {
	mu     sync.Mutex
	script []step
	calls  []time.Time
}

func (f *fakeWatch) newWatch(ctx context.Context) (endpoints.WatchChannel, error) {
	f.mu.Lock()
	i := min(len(f.calls), len(f.script)-1)
	f.calls = append(f.calls, time.Now())
	step := f.script[i]
	f.mu.Unlock()
	return step(ctx)
}

func (f *fakeWatch) times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// managerLike returns a step that behaves as endpoints.Manager does: the
// initial endpoints in the channel (capacity 1) before it returns, then a
// goroutine that sends each batch of live (without heeding ctx, as the
// manager does) and closes the channel when live is closed or ctx ends.
func managerLike(initial []*endpoints.Update, live <-chan []*endpoints.Update) step {
	return func(ctx context.Context) (endpoints.WatchChannel, error) {
		ch := make(chan []*endpoints.Update, 1)
		if len(initial) > 0 {
			ch <- initial
		}
		go func() {
			defer close(ch)
			for {
				select {
				case <-ctx.Done():
					return
				case ups, ok := <-live:
					if !ok {
						return
					}
					ch <- ups
				}
			}
		}()
		return ch, nil
	}
}

func add(key, addr string, md any) *endpoints.Update {
	return &endpoints.Update{Op: endpoints.Add, Key: key, Endpoint: endpoints.Endpoint{Addr: addr, Metadata: md}}
}

func del(key string) *endpoints.Update {
	return &endpoints.Update{Op: endpoints.Delete, Key: key}
}

func half() float64 { return 0.5 } // no jitter: every backoff is its nominal value

// TestResolverReportsEndpointsWithZones: every form of Metadata gives its
// zone; the state follows adds and deletes; an address under two keys is
// reported once; Addresses and Endpoints agree.
func TestResolverReportsEndpointsWithZones(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		live := make(chan []*endpoints.Update)
		_, cc, _ := startFake(t,
			managerLike([]*endpoints.Update{
				add("svc/3", "10.0.0.3:1", nil),
				add("svc/1", "10.0.0.1:1", Metadata{Zone: "a"}),
				add("svc/2", "10.0.0.2:1", map[string]any{"zone": "b", "other": 1.0}),
				add("svc/4", "10.0.0.4:1", &Metadata{Zone: "c"}),
				add("svc/5", "10.0.0.5:1", map[string]string{"zone": "d"}),
				add("svc/6", "10.0.0.6:1", "not metadata we know"),
			}, live),
		)
		synctest.Wait()
		n, got := cc.last()
		assert.Equal(t, 1, n)
		assert.Equal(t, []string{"10.0.0.1:1@a", "10.0.0.2:1@b", "10.0.0.3:1@", "10.0.0.4:1@c", "10.0.0.5:1@d", "10.0.0.6:1@"}, got)

		live <- []*endpoints.Update{del("svc/3"), del("svc/4"), del("svc/5"), del("svc/6"), add("svc/2", "10.0.0.2:1", map[string]any{"zone": "a"})}
		synctest.Wait()
		_, got = cc.last()
		assert.Equal(t, []string{"10.0.0.1:1@a", "10.0.0.2:1@a"}, got, "after deletes and a zone change")

		live <- []*endpoints.Update{add("svc/0", "10.0.0.2:1", map[string]any{"zone": "z"})}
		synctest.Wait()
		_, got = cc.last()
		assert.Equal(t, []string{"10.0.0.2:1@z", "10.0.0.1:1@a"}, got, "one address under two keys: the first key's")

		cc.mu.Lock()
		s := cc.states[len(cc.states)-1]
		cc.mu.Unlock()
		require.Len(t, s.Endpoints, len(s.Addresses))
		for i, e := range s.Endpoints {
			require.Len(t, e.Addresses, 1)
			assert.True(t, e.Addresses[0].Equal(s.Addresses[i]), "endpoint %d: %v, address %v", i, e.Addresses[0], s.Addresses[i])
		}
		assert.Empty(t, cc.errors())
	})
}

// TestResolverReportsNoEndpoints: an empty prefix is reported as an empty
// state, so the ClientConn learns there is nothing rather than waiting.
func TestResolverReportsNoEndpoints(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		live := make(chan []*endpoints.Update)
		_, cc, _ := startFake(t, managerLike(nil, live))
		synctest.Wait()
		n, got := cc.last()
		assert.Equal(t, 1, n)
		assert.Empty(t, got)
		live <- []*endpoints.Update{add("svc/1", "10.0.0.1:1", Metadata{Zone: "a"})}
		synctest.Wait()
		_, got = cc.last()
		assert.Equal(t, []string{"10.0.0.1:1@a"}, got)
	})
}

// TestResolverWatchesAgainWithBackoff: a read that fails is reported and
// tried again after 100 ms; a watch that breaks is made again after the
// backoff, doubling while failures follow each other and starting over
// after a watch that lasted; each new watch replaces the whole state, so
// an endpoint deleted while no watch ran is gone.
func TestResolverWatchesAgainWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		live1 := make(chan []*endpoints.Update)
		live2 := make(chan []*endpoints.Update)
		live3 := make(chan []*endpoints.Update)
		start := time.Now()
		_, cc, f := startFake(t,
			func(context.Context) (endpoints.WatchChannel, error) { return nil, errors.New("etcd down") },
			managerLike([]*endpoints.Update{add("svc/1", "10.0.0.1:1", nil), add("svc/2", "10.0.0.2:1", nil)}, live1),
			managerLike([]*endpoints.Update{add("svc/2", "10.0.0.2:1", nil)}, live2),
			managerLike([]*endpoints.Update{add("svc/2", "10.0.0.2:1", nil)}, live3),
		)
		synctest.Wait()
		require.Len(t, cc.errors(), 1)
		assert.ErrorContains(t, cc.errors()[0], "etcd down")

		time.Sleep(time.Second) // the second watch is made after 100 ms
		_, got := cc.last()
		assert.Equal(t, []string{"10.0.0.1:1@", "10.0.0.2:1@"}, got)

		close(live1) // broken: the second failure in a row
		synctest.Wait()
		broke := time.Now()
		time.Sleep(time.Second)
		n, got := cc.last()
		assert.Equal(t, []string{"10.0.0.2:1@"}, got, "the new watch's endpoints only")
		assert.Equal(t, 2, n)

		time.Sleep(10 * time.Second) // a watch that lasted
		close(live2)
		synctest.Wait()
		lasted := time.Now()
		time.Sleep(time.Second)
		n, _ = cc.last()
		assert.Equal(t, 2, n, "an unchanged state is not reported again")

		calls := f.times()
		require.Len(t, calls, 4)
		assert.Equal(t, []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond, 100 * time.Millisecond},
			[]time.Duration{calls[0].Sub(start), calls[1].Sub(calls[0]), calls[2].Sub(broke), calls[3].Sub(lasted)})
		assert.Len(t, cc.errors(), 1)
	})
}

// TestResolverBackoffBounds: the backoff doubles from 100 ms to 5 s and
// is jittered within ±20 %.
func TestResolverBackoffBounds(t *testing.T) {
	for _, c := range []struct {
		n    int
		rand float64
		want time.Duration
	}{
		{1, 0.5, 100 * time.Millisecond},
		{2, 0.5, 200 * time.Millisecond},
		{6, 0.5, 3200 * time.Millisecond},
		{7, 0.5, 5 * time.Second},
		{1000, 0.5, 5 * time.Second},
		{1, 0, 80 * time.Millisecond},
		{7, 0.999999, 5999998 * time.Microsecond},
	} {
		r := &endpointsResolver{rand: func() float64 { return c.rand }}
		assert.Equal(t, c.want, r.backoff(c.n).Round(time.Microsecond), "backoff(%d) with rand %v", c.n, c.rand)
	}
}

// TestResolverCloseWhileManagerSends: Close returns even when the
// manager's goroutine is blocked sending an update nobody reads (it does
// not heed its context while it sends); synctest fails the test with a
// deadlock if either goroutine is left blocked.
func TestResolverCloseWhileManagerSends(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		blocked := make(chan struct{})
		r, cc, _ := startFake(t,
			func(ctx context.Context) (endpoints.WatchChannel, error) {
				ch := make(chan []*endpoints.Update) // unbuffered: every send waits for the resolver
				go func() {
					defer close(ch)
					for i := 0; ctx.Err() == nil; i++ {
						if i == 3 {
							close(blocked)
						}
						ch <- []*endpoints.Update{add(fmt.Sprintf("svc/%d", i), "10.0.0.1:1", nil)}
					}
				}()
				return ch, nil
			},
		)
		<-blocked
		r.Close()
		synctest.Wait()
		n, _ := cc.last()
		c := len(cc.errors())
		time.Sleep(time.Minute)
		n2, _ := cc.last()
		assert.Equal(t, n, n2, "a state reported after Close")
		assert.Equal(t, c, len(cc.errors()), "an error reported after Close")
	})
}

// TestResolverReportsSlowRead: a read etcd does not answer is reported
// after 5 s, and the resolver goes on waiting for it.
func TestResolverReportsSlowRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		answer := make(chan struct{})
		live := make(chan []*endpoints.Update)
		_, cc, f := startFake(t,
			func(ctx context.Context) (endpoints.WatchChannel, error) {
				select {
				case <-answer:
					return managerLike([]*endpoints.Update{add("svc/1", "10.0.0.1:1", nil)}, live)(ctx)
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			},
		)
		time.Sleep(5*time.Second - time.Millisecond)
		synctest.Wait()
		assert.Empty(t, cc.errors(), "before 5 s")
		time.Sleep(time.Millisecond)
		synctest.Wait()
		require.Len(t, cc.errors(), 1)
		assert.True(t, strings.Contains(cc.errors()[0].Error(), "not answered"), "%v", cc.errors()[0])
		close(answer)
		synctest.Wait()
		n, got := cc.last()
		assert.Equal(t, 1, n)
		assert.Equal(t, []string{"10.0.0.1:1@"}, got)
		assert.Len(t, f.times(), 1, "one read, waited for")
	})
}
