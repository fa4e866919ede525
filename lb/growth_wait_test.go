package lb

import (
	"testing"

	"google.golang.org/grpc/peer"

	"github.com/grpcpool/grpcpool/internal/testutil"
)

// secondGrowth is a policy in the middle of its second growth: one
// backend, one stream a connection (maxStreamsPerConn 1, maxSize 3),
// whose server holds back new connections until the test admits them.
// Two streams waited for a growth while the only connection was full; the
// first growth's connection took one of them, and the other waits for the
// second growth, whose connection the server holds.
type secondGrowth struct {
	t         *testing.T
	gate      *gate
	ft        *fakeTimers
	firstWait []*fakeTimer       // the growWait timer armed while the first growth was under way
	placed    []*testutil.Stream // the streams open, in the order they opened
	results   chan opened        // the two streams that waited, as they open
	waiting   int                // how many of those have not been received
}

// opened is what opening a stream gave.
type opened struct {
	st  *testutil.Stream
	err error
}

// startSecondGrowth brings a policy to its second growth (secondGrowth).
// At cleanup the server admits every connection and the streams end.
func startSecondGrowth(t *testing.T) *secondGrowth {
	t.Helper()
	s, gt := startGated(t, 1)
	ft := &fakeTimers{}
	cc, _ := dial(t, []*server{s}, serviceConfig(register(ft, nil), Config{Size: 1, MaxSize: 3, MaxStreamsPerConn: 1}))
	waitConns(t, []*server{s}, 1)
	sc := &secondGrowth{t: t, gate: gt, ft: ft, placed: testutil.OpenStreams(t, cc, 1), results: make(chan opened, 2), waiting: 2}
	for range 2 {
		go func() {
			st, err := testutil.OpenStream(cc)
			sc.results <- opened{st, err}
		}()
	}
	t.Cleanup(func() {
		gt.release()
		for ; sc.waiting > 0; sc.waiting-- {
			if r := <-sc.results; r.st != nil {
				r.st.Cancel()
			}
		}
	})
	testutil.WaitFor(t, "the first growth and its wait", func() bool {
		return gt.n.Load() == 2 && ft.count(growWaitTimer) == 1
	})
	q := ft.live(growWaitTimer)[0].q
	applied(q) // the timer is armed for the growth under way
	sc.firstWait = ft.live(growWaitTimer)
	gt.admitOne()
	sc.next("the stream that the first growth's connection takes")
	testutil.WaitFor(t, "the second growth", func() bool { return gt.n.Load() == 3 })
	applied(q) // the policy has applied the second growth's beginning
	return sc
}

// next returns the next of the waiting streams to open, failing the test
// if it does not open.
func (sc *secondGrowth) next(what string) *testutil.Stream {
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
func (sc *secondGrowth) conns() []string {
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
	sc := startSecondGrowth(t)
	run(sc.firstWait) // growWait since the first growth began has passed
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
	sc := startSecondGrowth(t)
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
