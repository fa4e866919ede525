package lb

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/testutil"
)

// TestSizeConnectionsToEveryResolvedAddress: a plain ClientConn with the
// policy keeps Size connections (SubConns) to every address its resolver
// reports, as the servers count them.
func TestSizeConnectionsToEveryResolvedAddress(t *testing.T) {
	ss := startServers(t, 3)
	dial(t, ss, ServiceConfig(Config{Size: 4}))
	waitConns(t, ss, 4)
	for _, s := range ss {
		if got := s.conns.total.Load(); got != 4 {
			t.Errorf("%s: %d connections made, want 4", s.Name(), got)
		}
	}
}

// TestRoundRobinSpreadsCallsEvenly: round_robin (the default) takes the
// backends in turn: sequential calls are spread within one call per P of
// exact (the core's per-P tickets).
func TestRoundRobinSpreadsCallsEvenly(t *testing.T) {
	ss := startServers(t, 3)
	cc, _ := dial(t, ss, ServiceConfig(Config{Size: 2}))
	waitConns(t, ss, 2)
	waitAllCalled(t, cc, ss)
	before := unaryOf(ss)
	const n = 300
	mustCall(t, cc, n)
	slack := int64(runtime.GOMAXPROCS(0))
	for i, got := range unaryOf(ss) {
		got -= before[i]
		if d := got - n/3; d < -slack || d > slack {
			t.Errorf("%s got %d of %d calls, want %d ± %d", ss[i].Name(), got, n, n/3, slack)
		}
	}
}

// TestLeastActiveSpreadsStreamsExactly: least_active places each stream on
// the backend, then the connection, with the fewest active calls and
// streams: 30 streams over 3 backends are 10 on each.
func TestLeastActiveSpreadsStreamsExactly(t *testing.T) {
	ss := startServers(t, 3)
	cc, _ := dial(t, ss, ServiceConfig(Config{Size: 2, Policy: LeastActive}))
	waitConns(t, ss, 2)
	waitAllCalled(t, cc, ss)
	streams := testutil.OpenStreams(t, cc, 30)
	defer testutil.EndAll(t, streams)
	got := testutil.ByBackend(streams, namesOf(ss))
	for i, n := range got {
		if n != 10 {
			t.Errorf("streams per backend %v, want 10 each (%s has %d)", got, ss[i].Name(), n)
			break
		}
	}
}

// TestConsistentHashKeepsEachKeyOnOneBackend: consistent_hash reads the
// key from the call's outgoing metadata under hashKey (case-insensitive):
// every call of a key reaches the same backend, and the keys are spread.
func TestConsistentHashKeepsEachKeyOnOneBackend(t *testing.T) {
	ss := startServers(t, 3)
	cc, _ := dial(t, ss, ServiceConfig(Config{Policy: ConsistentHash, HashKey: "X-User"}))
	waitConns(t, ss, 2)
	c := echopb.NewEchoClient(cc)
	used := map[string]bool{}
	for k := range 20 {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-user", fmt.Sprint("user-", k))
		owner := ""
		for range 5 {
			resp, err := c.Unary(ctx, &echopb.EchoRequest{Message: "hi"})
			if err != nil {
				t.Fatalf("key %d: %v", k, err)
			}
			if owner == "" {
				owner = resp.GetBackend()
			} else if resp.GetBackend() != owner {
				t.Fatalf("key %d reached %s and %s, want one backend", k, owner, resp.GetBackend())
			}
		}
		used[owner] = true
	}
	if len(used) < 2 {
		t.Errorf("20 keys all on %v, want them spread", used)
	}
}

// TestPeakEWMALearnsFromFailures: peak_ewma is fed by every call's
// outcome: a backend whose call failed costs the 5 s failure penalty, so
// once it has failed a call every later call goes to the other.
func TestPeakEWMALearnsFromFailures(t *testing.T) {
	ss := startServers(t, 2)
	ss[0].SetFail(codes.Unavailable)
	cc, _ := dial(t, ss, ServiceConfig(Config{Size: 1, Policy: PeakEWMA}))
	waitConns(t, ss, 1)
	waitAllCalled(t, cc, ss) // the failing one has failed at least once
	before := ss[0].Unary()
	mustCall(t, cc, 40)
	if got := ss[0].Unary() - before; got != 0 {
		t.Fatalf("the backend that failed got %d of the next 40 calls, want 0", got)
	}
}

// TestPeakEWMALearnsFromLatency: peak_ewma is fed by every call's
// latency: a backend that took 300 ms costs that much, so once it has
// answered a call every later call goes to the fast one.
func TestPeakEWMALearnsFromLatency(t *testing.T) {
	ss := startServers(t, 2)
	ss[0].SetDelay(300 * time.Millisecond)
	cc, _ := dial(t, ss, ServiceConfig(Config{Size: 1, Policy: PeakEWMA}))
	waitConns(t, ss, 1)
	waitAllCalled(t, cc, ss) // the slow one has answered at least once
	before := ss[0].Unary()
	mustCall(t, cc, 40)
	if got := ss[0].Unary() - before; got != 0 {
		t.Fatalf("the slow backend got %d of the next 40 calls, want 0", got)
	}
}
