package lb

import (
	"net"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/peer"

	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/testutil"
)

// growthScene is a policy over one backend, one stream a connection
// (maxStreamsPerConn 1, maxSize 3), whose server holds back new
// connections until the test admits them, with one stream on its first
// connection and more opening (open) that wait for growths.
type growthScene struct {
	t       *testing.T
	cc      *grpc.ClientConn
	gate    *gate
	ft      *fakeTimers
	placed  []*testutil.Stream // the streams open, in the order they opened
	results chan opened        // the streams opening, as they open
	waiting int                // how many of those have not been received
}

// opened is what opening a stream gave.
type opened struct {
	st  *testutil.Stream
	err error
}

// startGrowthScene starts a growthScene. At cleanup the server admits
// every connection and the streams end.
func startGrowthScene(t *testing.T) *growthScene {
	t.Helper()
	s, gt := startGated(t, 1)
	ft := &fakeTimers{}
	cc, _ := dial(t, []*server{s}, serviceConfig(register(ft, nil), Config{Size: 1, MaxSize: 3, MaxStreamsPerConn: 1}))
	waitConns(t, []*server{s}, 1)
	sc := &growthScene{t: t, cc: cc, gate: gt, ft: ft, placed: testutil.OpenStreams(t, cc, 1), results: make(chan opened, 2)}
	t.Cleanup(func() {
		gt.release()
		for ; sc.waiting > 0; sc.waiting-- {
			if r := <-sc.results; r.st != nil {
				r.st.Cancel()
			}
		}
	})
	return sc
}

// open starts opening n streams (two at most in all).
func (sc *growthScene) open(n int) {
	for range n {
		sc.waiting++
		go func() {
			st, err := testutil.OpenStream(sc.cc)
			sc.results <- opened{st, err}
		}()
	}
}

// firstGrowth opens n streams, waits for the growth they wait for to
// begin, and returns the growWait timer armed for it.
func (sc *growthScene) firstGrowth(n int) []*fakeTimer {
	t := sc.t
	t.Helper()
	sc.open(n)
	testutil.WaitFor(t, "the first growth and its wait", func() bool {
		return sc.gate.n.Load() == 2 && sc.ft.count(growWaitTimer) == 1
	})
	applied(sc.ft.live(growWaitTimer)[0].q) // the timer is armed for the growth under way
	return sc.ft.live(growWaitTimer)
}

// startSecondGrowth brings a growthScene to its second growth: two
// streams waited for a growth while the only connection was full; the
// first growth's connection took one of them, and the other waits for the
// second growth, whose connection the server holds. It returns the
// growWait timer armed while the first growth was under way.
func startSecondGrowth(t *testing.T) (*growthScene, []*fakeTimer) {
	t.Helper()
	sc := startGrowthScene(t)
	firstWait := sc.firstGrowth(2)
	sc.gate.admitOne()
	sc.next("the stream that the first growth's connection takes")
	testutil.WaitFor(t, "the second growth", func() bool { return sc.gate.n.Load() == 3 })
	applied(firstWait[0].q) // the policy has applied the second growth's beginning
	return sc, firstWait
}

// next returns the next of the waiting streams to open, failing the test
// if it does not open.
func (sc *growthScene) next(what string) *testutil.Stream {
	t := sc.t
	t.Helper()
	var r opened
	select {
	case r = <-sc.results:
		sc.waiting--
	case <-testutil.Context(t).Done():
		t.Fatalf("%s did not open", what)
	}
	if r.err != nil {
		t.Fatalf("%s: %v", what, r.err)
	}
	t.Cleanup(r.st.Cancel)
	sc.placed = append(sc.placed, r.st)
	return r.st
}

// conns returns the connection (its client address) of each stream open,
// in the order they opened.
func (sc *growthScene) conns() []string {
	out := make([]string, len(sc.placed))
	for i, st := range sc.placed {
		if p, ok := peer.FromContext(st.S.Context()); ok && p.LocalAddr != nil {
			out[i] = p.LocalAddr.String()
		}
	}
	return out
}

// Each growth a stream waits for is bounded by growWait on its own, not
// all of them together: a stream that another beat to the first growth's
// connection waits for the second growth, which began shortly before the
// growWait since the first one ends, and takes its connection rather than
// overflow onto a full one when that growWait ends.
func TestStreamWaitsForEachGrowthInTurn(t *testing.T) {
	sc, firstWait := startSecondGrowth(t)
	run(firstWait) // growWait since the first growth began has passed
	if n := sc.ft.count(growWaitTimer); n != 1 {
		t.Errorf("%d growWait timers bound the wait for the second growth, want 1", n)
	}
	sc.gate.admitOne()
	sc.next("the stream waiting for the second growth")
	if c := sc.conns(); c[2] == c[0] || c[2] == c[1] {
		t.Errorf("the stream waiting for the second growth went to a full connection: streams on connections %v, want three", c)
	}
}

// A second growth that outlasts its own growWait ends the wait for it: the
// stream overflows onto a full connection.
func TestStreamOverflowsWhenTheSecondGrowthOutlastsGrowWait(t *testing.T) {
	sc, _ := startSecondGrowth(t)
	if n := sc.ft.fire(growWaitTimer); n != 1 {
		t.Fatalf("fired %d growWait timers, want 1", n)
	}
	sc.next("the stream waiting for the second growth")
	if c := sc.conns(); c[2] != c[0] && c[2] != c[1] {
		t.Errorf("the stream after growWait went to connection %s, want one of the full ones %v", c[2], c[:2])
	}
	if n := sc.gate.n.Load(); n != 3 {
		t.Errorf("the server saw %d connections, want 3 (the second growth's still held)", n)
	}
}

// A growth that lands within growWait ends the wait for it: when growWait
// since it began has passed, a stream that finds every connection full
// waits for a growth of its own, and takes its connection, rather than
// overflow onto a full one.
func TestStreamAfterATimelyGrowthWaitsForANewOne(t *testing.T) {
	sc := startGrowthScene(t)
	sc.firstGrowth(1)
	sc.gate.admitOne()
	sc.next("the stream waiting for the first growth")
	sc.ft.fire(growWaitTimer) // growWait since the first growth began has passed
	sc.open(1)
	testutil.WaitFor(t, "the second growth", func() bool { return sc.gate.n.Load() == 3 })
	sc.gate.admitOne()
	sc.next("the stream opened after the first growth")
	if c := sc.conns(); c[2] == c[0] || c[2] == c[1] {
		t.Errorf("the stream opened after the first growth went to a full connection: streams on connections %v, want three", c)
	}
}

// A growth that lands ends the wait for it: no growWait timer is left
// pending, so one that a stream finds every connection full later is
// bounded by a timer armed when it began to wait, not by one armed before.
func TestALandedGrowthEndsTheWait(t *testing.T) {
	sc := startGrowthScene(t)
	firstWait := sc.firstGrowth(1)
	sc.gate.admitOne()
	sc.next("the stream waiting for the first growth")
	applied(firstWait[0].q)
	if n := sc.ft.count(growWaitTimer); n != 0 {
		t.Errorf("%d growWait timers pending after the growth landed, want 0", n)
	}
	sc.open(1)
	testutil.WaitFor(t, "the second growth and its wait", func() bool {
		return sc.gate.n.Load() == 3 && sc.ft.count(growWaitTimer) == 1
	})
	if n := run(firstWait); n != 0 {
		t.Errorf("ran %d of the growWait timers armed for the first growth, want 0", n)
	}
	sc.gate.admitOne()
	sc.next("the stream opened after the first growth")
	if c := sc.conns(); c[2] == c[0] || c[2] == c[1] {
		t.Errorf("the stream opened after the first growth went to a full connection: streams on connections %v, want three", c)
	}
}

// refuser closes a server's new connections past its first as soon as it
// accepts them: the client's handshake fails, and every growth of the
// backend fails at once.
type refuser struct {
	net.Listener
	n atomic.Int64
}

func (r *refuser) Accept() (net.Conn, error) {
	for {
		c, err := r.Listener.Accept()
		if err != nil || r.n.Add(1) == 1 {
			return c, err
		}
		_ = c.Close()
	}
}

// refusing is an Echo backend, named b1, whose connections past the first
// are refused (refuser).
type refusing struct {
	*server
	ref *refuser
}

func startRefusing(t *testing.T) refusing {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ref := &refuser{Listener: lis}
	cc := &connCounter{}
	s := backend.Start(ref, backend.Options{Name: "b1", ServerOptions: []grpc.ServerOption{grpc.StatsHandler(cc)}})
	t.Cleanup(s.Stop)
	return refusing{server: &server{Server: s, conns: cc}, ref: ref}
}

// A growth that fails, with no other under way, ends the wait: the stream
// that waited for it overflows at once, and no growWait timer is left
// pending to cut short the wait of a stream that finds the backend full
// after the backoff.
func TestAFailedGrowthWithNoneOtherEndsTheWait(t *testing.T) {
	b := startRefusing(t)
	ft, clk := &fakeTimers{}, &fakeClock{}
	cc, _ := dial(t, []*server{b.server}, serviceConfig(register(ft, clk), Config{Size: 1, MaxSize: 3, MaxStreamsPerConn: 1}))
	waitConns(t, []*server{b.server}, 1)
	testutil.OpenStreams(t, cc, 2) // the second waits for the growth, which fails: it overflows
	testutil.WaitFor(t, "the growth failed", func() bool { return ft.count(core.GrowTimer) == 1 })
	applied(ft.live(core.GrowTimer)[0].q)
	if n := ft.count(growWaitTimer); n != 0 {
		t.Errorf("%d growWait timers pending after the only growth failed, want 0", n)
	}
}

// A growth that fails does not restart the wait for another under way:
// two full backends grow at once; b0's growth is held, b1's fails at
// once, and b1 grows again when its backoff ends, and fails again. The
// growWait timer armed when the stream began to wait still bounds it: when
// it fires, the stream overflows onto a full connection.
func TestFailedGrowthsDoNotRestartTheWait(t *testing.T) {
	a, gt := startGated(t, 1)
	b := startRefusing(t)
	ref := b.ref
	ss := []*server{a, b.server}
	ft, clk := &fakeTimers{}, &fakeClock{}
	cc, _ := dial(t, ss, serviceConfig(register(ft, clk), Config{Size: 1, MaxSize: 3, MaxStreamsPerConn: 1}))
	waitConns(t, ss, 1)
	waitAllCalled(t, cc, ss)
	placed := testutil.OpenStreams(t, cc, 2)
	if placed[0].Backend == placed[1].Backend {
		t.Fatalf("both streams on %s, want one on each backend", placed[0].Backend)
	}
	results := make(chan opened, 1)
	go func() {
		st, err := testutil.OpenStream(cc)
		results <- opened{st, err}
	}()
	t.Cleanup(func() {
		gt.release()
		if r := <-results; r.st != nil {
			r.st.Cancel()
		}
	})
	testutil.WaitFor(t, "b0's growth held, b1's failed, the wait armed", func() bool {
		return gt.n.Load() == 2 && ref.n.Load() == 2 && ft.count(core.GrowTimer) == 1 && ft.count(growWaitTimer) == 1
	})
	firstWait := ft.live(growWaitTimer)
	applied(firstWait[0].q)
	for i := range 2 {
		clk.advance(ft.live(core.GrowTimer)[0].d)
		ft.fire(core.GrowTimer) // b1's backoff ended: it grows again, and fails
		testutil.WaitFor(t, "b1's next growth failed", func() bool {
			return ref.n.Load() == int64(3+i) && ft.count(core.GrowTimer) == 1
		})
		applied(firstWait[0].q)
	}
	if n := run(firstWait); n != 1 {
		t.Fatalf("ran %d of the growWait timers armed when the stream began to wait, want 1: b1's failed growths restarted the wait", n)
	}
	select {
	case r := <-results:
		results <- r // for the cleanup
		if r.err != nil {
			t.Fatalf("the waiting stream: %v", r.err)
		}
	case <-testutil.Context(t).Done():
		t.Fatal("the waiting stream did not overflow when its growWait ended")
	}
	if n := gt.n.Load(); n != 2 {
		t.Errorf("b0's server saw %d connections, want 2 (its growth still held)", n)
	}
}
