package lb

import (
	"testing"

	"github.com/grpcpool/grpcpool/internal/testutil"
)

// TestGrowsPastMaxStreamsPerConn: with maxStreamsPerConn, a backend whose
// connections all carry that many calls and streams gets another
// connection, up to maxSize; past it, streams overflow onto the least
// loaded connection at once.
func TestGrowsPastMaxStreamsPerConn(t *testing.T) {
	ss := startServers(t, 1)
	cc, _ := dial(t, ss, ServiceConfig(Config{Size: 1, MaxSize: 3, MaxStreamsPerConn: 2, Policy: LeastActive}))
	waitConns(t, ss, 1)
	streams := testutil.OpenStreams(t, cc, 6)
	defer testutil.EndAll(t, streams)
	if got := ss[0].conns.total.Load(); got != 3 {
		t.Fatalf("6 streams at 2 per connection made %d connections, want 3", got)
	}
	more := testutil.OpenStreams(t, cc, 2) // past maxSize: overflow
	defer testutil.EndAll(t, more)
	if got := ss[0].conns.total.Load(); got != 3 {
		t.Fatalf("streams past maxSize made %d connections, want still 3", got)
	}
}

// TestWaitForGrowthEndsWithItsTimer: a stream waiting for a connection
// being added waits at most the growth wait: when that timer fires
// before the new connection is READY (the server holds it back), the
// stream overflows onto a full connection.
func TestWaitForGrowthEndsWithItsTimer(t *testing.T) {
	s, g := startGated(t, 1)
	ft := &fakeTimers{}
	name := register(ft, nil)
	cc, _ := dial(t, []*server{s}, serviceConfig(name, Config{Size: 1, MaxStreamsPerConn: 1}))
	waitConns(t, []*server{s}, 1)
	first := testutil.OpenStreams(t, cc, 1)
	defer testutil.EndAll(t, first)
	opened := make(chan error, 1)
	var second []*testutil.Stream
	go func() {
		st, err := testutil.OpenStream(cc)
		if st != nil {
			second = append(second, st)
		}
		opened <- err
	}()
	testutil.WaitFor(t, "the growth and its wait", func() bool { return g.n.Load() == 2 && ft.count(growWaitTimer) == 1 })
	select {
	case err := <-opened:
		t.Fatalf("the second stream opened (%v) before the growth or its wait ended", err)
	default:
	}
	ft.fire(growWaitTimer)
	if err := <-opened; err != nil {
		t.Fatalf("stream after the growth wait: %v", err)
	}
	defer testutil.EndAll(t, second)
	if got := s.ActiveStreams(); got != 2 {
		t.Fatalf("server has %d streams, want 2 on its one accepted connection", got)
	}
	g.release()
}
