package etcdmembership

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/grpcpool/grpcpool/internal/integration/harness"
)

// zoneWatch runs m.WatchZones until the test ends and keeps the last
// counts it delivered.
type zoneWatch struct {
	mu   sync.Mutex
	last map[string]int
}

func watchZones(t *testing.T, m *Membership) *zoneWatch {
	t.Helper()
	w := &zoneWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- m.WatchZones(ctx, func(c map[string]int) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.last = c
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

func (w *zoneWatch) get() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// zonesAre waits until every watch's last counts are want.
func zonesAre(t *testing.T, what string, ws []*zoneWatch, want map[string]int) {
	t.Helper()
	harness.Eventually(t, 20*time.Second, what, func() error {
		for i, w := range ws {
			if got := w.get(); !maps.Equal(got, want) {
				return fmt.Errorf("member %d: %v, want %v", i, got, want)
			}
		}
		return nil
	})
}

func joinZone(t *testing.T, cli *clientv3.Client, prefix, zone string) *Membership {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := Join(ctx, cli, prefix, Options{TTL: 2 * time.Second, Zone: zone})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// TestWatchZones: three clients in zones a, a, b all count {a:2, b:1};
// one in a leaves (Close) and the others count {a:1, b:1}; one with no
// zone joins and is counted under "". The counts' sum is the count each
// client's Place reports.
func TestWatchZones(t *testing.T) {
	const prefix = "/test/zones/"
	cli := harness.StartEtcd(t).Client(t)
	ms := []*Membership{joinZone(t, cli, prefix, "a"), joinZone(t, cli, prefix, "a"), joinZone(t, cli, prefix, "b")}
	var ws []*zoneWatch
	for _, m := range ms {
		ws = append(ws, watchZones(t, m))
	}
	zonesAre(t, "three clients in a, a, b", ws, map[string]int{"a": 2, "b": 1})
	converged(t, "three clients", ms)

	require.NoError(t, ms[0].Close())
	ms, ws = ms[1:], ws[1:]
	zonesAre(t, "one in a left", ws, map[string]int{"a": 1, "b": 1})
	converged(t, "two clients", ms)

	m := joinZone(t, cli, prefix, "")
	ms, ws = append(ms, m), append(ws, watchZones(t, m))
	zonesAre(t, "one with no zone joined", ws, map[string]int{"a": 1, "b": 1, "": 1})
	converged(t, "three clients again", ms)

	resp, err := cli.Get(context.Background(), prefix+"zones/", clientv3.WithPrefix())
	require.NoError(t, err)
	require.Len(t, resp.Kvs, 2, "one zone key per client with a zone")
}

// TestWatchZonesClosed: WatchZones returns ErrClosed once the Membership
// is closed, and the context's error when its context ends.
func TestWatchZonesClosed(t *testing.T) {
	cli := harness.StartEtcd(t).Client(t)
	m := joinZone(t, cli, "/test/zones-closed/", "a")
	w := watchZones(t, m)
	zonesAre(t, "the client itself", []*zoneWatch{w}, map[string]int{"a": 1})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, m.WatchZones(ctx, func(map[string]int) {}), context.Canceled)
	require.NoError(t, m.Close())
	require.ErrorIs(t, m.WatchZones(context.Background(), func(map[string]int) {}), ErrClosed)
}

// TestWatchZonesAfterRejoin: a client whose lease ends without Close
// records its zone again under its new lease, and the counts come back.
func TestWatchZonesAfterRejoin(t *testing.T) {
	const prefix = "/test/zones-rejoin/"
	cli := harness.StartEtcd(t).Client(t)
	ms := []*Membership{joinZone(t, cli, prefix, "a"), joinZone(t, cli, prefix, "b")}
	ws := []*zoneWatch{watchZones(t, ms[0]), watchZones(t, ms[1])}
	zonesAre(t, "a and b", ws, map[string]int{"a": 1, "b": 1})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	zoneKeyOf := func(zone string) (*mvccpb.KeyValue, error) {
		resp, err := cli.Get(ctx, prefix+"zones/", clientv3.WithPrefix())
		if err != nil {
			return nil, err
		}
		for _, kv := range resp.Kvs {
			if string(kv.Value) == zone {
				return kv, nil
			}
		}
		return nil, fmt.Errorf("no zone key for %q", zone)
	}
	old, err := zoneKeyOf("a")
	require.NoError(t, err)
	_, err = cli.Revoke(ctx, clientv3.LeaseID(old.Lease))
	require.NoError(t, err)
	harness.Eventually(t, 20*time.Second, "zone a on a new lease", func() error {
		kv, err := zoneKeyOf("a")
		if err != nil {
			return err
		}
		if kv.Lease == old.Lease {
			return errors.New("still the revoked lease")
		}
		return nil
	})
	zonesAre(t, "a and b after a re-joined", ws, map[string]int{"a": 1, "b": 1})
}
