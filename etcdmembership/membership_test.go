package etcdmembership

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/grpcpool/grpcpool/internal/integration/harness"
	"github.com/grpcpool/grpcpool/internal/subset"
)

// crash stops following the fleet and stops refreshing the lease without
// revoking it, as a process that died would: the slot stays until the
// lease expires.
func (m *Membership) crash() {
	if m.stop() {
		m.sess.Orphan()
		m.sessCancel()
	}
}

func join(t *testing.T, cli *clientv3.Client, prefix string, ttl time.Duration) *Membership {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Join(ctx, cli, prefix, Options{TTL: ttl})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// startFleet starts etcd and n members with a 2 s TTL under prefix, and
// waits until they have converged.
func startFleet(t *testing.T, prefix string, n int) (*clientv3.Client, []*Membership, []int) {
	t.Helper()
	cli := harness.StartEtcd(t).Client(t)
	ms := make([]*Membership, n)
	for i := range ms {
		ms[i] = join(t, cli, prefix, 2*time.Second)
	}
	return cli, ms, converged(t, fmt.Sprintf("%d clients joined", n), ms)
}

// converged waits until every member knows a place, the indexes are
// exactly 0 … len(ms)−1 and every count is len(ms); it returns each
// member's index.
func converged(t *testing.T, what string, ms []*Membership) []int {
	t.Helper()
	var idx []int
	took := harness.Eventually(t, 20*time.Second, what, func() error {
		idx = idx[:0]
		for i, m := range ms {
			index, count, ok := m.Place()
			if !ok {
				return fmt.Errorf("member %d: no place yet", i)
			}
			if count != len(ms) {
				return fmt.Errorf("member %d: count %d, want %d", i, count, len(ms))
			}
			idx = append(idx, index)
		}
		sorted := slices.Sorted(slices.Values(idx))
		for i, n := range sorted {
			if n != i {
				return fmt.Errorf("indexes %v are not 0…%d", sorted, len(ms)-1)
			}
		}
		return nil
	})
	t.Logf("%s: converged in %v", what, took.Round(time.Millisecond))
	return slices.Clone(idx)
}

// balanced asserts that the members' subsets of 40 backends, 8 each, give
// every backend an even split of the connections, give or take one.
func balanced(t *testing.T, idx []int) {
	t.Helper()
	keys := make([]string, 40)
	for i := range keys {
		keys[i] = fmt.Sprintf("backend-%02d.test:50051", i)
	}
	load := make(map[string]int)
	for _, i := range idx {
		for _, k := range subset.Select(keys, i, 8) {
			load[k]++
		}
	}
	mean := float64(len(idx)*8) / float64(len(keys))
	for _, k := range keys {
		assert.GreaterOrEqual(t, load[k], int(math.Floor(mean))-1, "%s, mean %.1f", k, mean)
		assert.LessOrEqual(t, load[k], int(math.Ceil(mean))+1, "%s, mean %.1f", k, mean)
	}
}

// moved counts the members (by position in both slices) whose index
// changed.
func moved(before, after []int) int {
	n := 0
	for i := range after {
		if before[i] != after[i] {
			n++
		}
	}
	return n
}

// TestFleet runs ten clients against a real etcd: they converge to
// indexes 0…9; one leaves (Close revokes its lease) and one crashes (its
// lease expires after the 2 s TTL); each time the survivors converge
// again, at most one of them changes index (the last one moves into the
// freed slot), and their subsets stay balanced.
func TestFleet(t *testing.T) {
	_, ms, idx := startFleet(t, "/test/fleet/", 10)
	balanced(t, idx)

	// One leaves: the member holding index 3.
	leaver := slices.Index(idx, 3)
	require.NoError(t, ms[leaver].Close())
	ms, idx = slices.Delete(ms, leaver, leaver+1), slices.Delete(idx, leaver, leaver+1)
	after := converged(t, "9 clients after one left", ms)
	assert.LessOrEqual(t, moved(idx, after), 1, "indexes changed: before %v, after %v", idx, after)
	idx = after
	balanced(t, idx)

	// One crashes: the member holding index 0; its lease expires.
	crashed := slices.Index(idx, 0)
	ms[crashed].crash()
	ms, idx = slices.Delete(ms, crashed, crashed+1), slices.Delete(idx, crashed, crashed+1)
	after = converged(t, "8 clients after one crashed", ms)
	assert.LessOrEqual(t, moved(idx, after), 1, "indexes changed: before %v, after %v", idx, after)
	balanced(t, after)
}

// TestWatch: Watch delivers the place once known, returns the context's
// error when it ends, and ErrClosed after Close.
func TestWatch(t *testing.T) {
	e := harness.StartEtcd(t)
	cli := e.Client(t)
	m := join(t, cli, "/test/watch", 0)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan [2]int, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- m.Watch(ctx, func(i, c int) {
			select {
			case got <- [2]int{i, c}:
			default:
			}
		})
	}()
	select {
	case p := <-got:
		assert.Equal(t, [2]int{0, 1}, p)
	case <-ctx.Done():
		t.Fatal("no place delivered")
	}
	require.NoError(t, m.Close())
	select {
	case err := <-errc:
		require.ErrorIs(t, err, ErrClosed)
	case <-ctx.Done():
		t.Fatal("Watch did not return after Close")
	}
	require.ErrorIs(t, m.Watch(ctx, func(int, int) {}), ErrClosed)
	require.NoError(t, m.Close(), "a second Close")
}

func TestJoinInvalid(t *testing.T) {
	ctx := context.Background()
	_, err := Join(ctx, nil, "/p/", Options{})
	assert.Error(t, err, "nil client")
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:1"}, DialTimeout: time.Second})
	require.NoError(t, err)
	defer cli.Close()
	_, err = Join(ctx, cli, "", Options{})
	assert.Error(t, err, "empty prefix")
	_, err = Join(ctx, cli, "/p/", Options{TTL: -time.Second})
	assert.Error(t, err, "negative TTL")
}

// TestRejoin: a client whose lease ends without Close (revoked from
// outside here, as etcd expires it after a partition longer than the TTL)
// takes a new lease and a slot again, and the fleet converges.
func TestRejoin(t *testing.T) {
	const prefix = "/test/rejoin/"
	cli, ms, idx := startFleet(t, prefix, 4)

	victim := slices.Index(idx, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, fmt.Sprintf("%sslots/%d", prefix, 1))
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 1)
	_, err = cli.Revoke(ctx, clientv3.LeaseID(resp.Kvs[0].Lease))
	require.NoError(t, err)

	harness.Eventually(t, 20*time.Second, "the victim on a new lease", func() error {
		r, err := cli.Get(ctx, prefix+"slots/", clientv3.WithPrefix())
		if err != nil {
			return err
		}
		for _, kv := range r.Kvs {
			if kv.Lease == resp.Kvs[0].Lease {
				return fmt.Errorf("%s still on the revoked lease", kv.Key)
			}
		}
		if len(r.Kvs) != len(ms) {
			return fmt.Errorf("%d slots, want %d", len(r.Kvs), len(ms))
		}
		return nil
	})
	after := converged(t, "4 clients after one re-joined", ms)
	assert.LessOrEqual(t, moved(idx, after), 2, "indexes: before %v, after %v (victim %d)", idx, after, victim)
}
