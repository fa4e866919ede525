// Package etcdmembership keeps a pool's place in its fleet of clients in
// etcd: each client registers under a lease, watches its peers, and learns
// its index among them and their count, which pool.WithSubset turns into
// the backends it connects to. Its resolver (NewResolver) reports the
// backends registered in etcd with etcd's naming package, each with its
// zone.
//
//	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints})
//	...
//	m, err := etcdmembership.Join(ctx, cli, "/fleets/checkout-clients/", etcdmembership.Options{})
//	if err != nil { ... }
//	defer m.Close() // revokes the lease: the peers learn at once
//	p, err := pool.New("dns:///inventory.prod.svc:50051",
//		pool.WithSubset(20, m), ...)
//
// # Slots
//
// Each client holds one slot key, prefix + "slots/" + its index, attached
// to its lease. A newcomer takes the lowest free slot. When a client leaves
// (Close revokes its lease) or dies (its lease expires after the TTL), its
// slot is freed and the client holding the highest slot moves into it, in
// one transaction; nobody else changes index. Indexes therefore stay dense
// (0 … count−1) and stable, which is what keeps the churn of a leave to the
// leaver's connections and the mover's: a client's subset depends on its
// index alone (see docs/fleets.md for the measured figures).
//
// # Zones
//
// A client that joins with Options.Zone records its zone under its lease,
// in the key prefix + "zones/" + its lease ID, before it takes a slot;
// WatchZones (pool.ZoneMembership) counts the slots' holders per zone, so
// every client computes the same share of the fleet in each zone.
//
// # Resolver
//
// Backends register with go.etcd.io/etcd/client/v3/naming/endpoints,
// their zone in the endpoint's Metadata (see Metadata); NewResolver's
// "etcd:///<target>" resolves them for pool.WithResolvers or
// grpc.WithResolvers, each address carrying its zone (pool.AddressZone).
//
// The module is separate from github.com/grpcpool/grpcpool so that the SDK
// does not depend on the etcd client.
package etcdmembership

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/grpcpool/grpcpool/pool"
)

// DefaultTTL is the lease TTL without Options.TTL: how long a client that
// died without closing keeps its slot.
const DefaultTTL = 10 * time.Second

// MinTTL is the smallest lease TTL; smaller Options.TTL values are raised
// to it (etcd itself refuses leases much shorter than its election
// timeout).
const MinTTL = 2 * time.Second

// retryEvery is how long the membership waits after a failed etcd request
// before it tries again.
const retryEvery = 500 * time.Millisecond

// ErrClosed is returned by Watch once the Membership is closed.
var ErrClosed = errors.New("etcdmembership: closed")

// Options configures a Membership. The zero value is valid. It is a plain
// value, safe to copy and share.
type Options struct {
	// TTL is the lease TTL: a client that stops without Close (a crash, a
	// partition) keeps its slot this long. Rounded up to whole seconds.
	// Default 10 s (DefaultTTL) when zero; values below 2 s (MinTTL) are
	// raised to 2 s; negative values make Join fail.
	TTL time.Duration
	// Zone is this client's zone (the one its pool's WithZone names). It
	// is recorded under the client's lease, so that every client's
	// WatchZones counts it. Empty (the default) counts the client under
	// the zone "".
	Zone string
}

// Membership is one client's registration in a fleet kept in etcd. It
// implements pool.Membership and pool.ZoneMembership. It is safe for concurrent use: several pools
// may Watch the same Membership.
type Membership struct {
	cli    *clientv3.Client
	prefix string // the fleet's key prefix, ending in "/"
	slots  string // key prefix of the slots: prefix + "slots/"
	zones  string // key prefix of the clients' zones: prefix + "zones/"
	zone   string // Options.Zone
	ttl    int64  // lease TTL, in seconds
	ctx    context.Context
	cancel context.CancelFunc // stops the loop
	done   chan struct{}      // closed when the loop has returned

	// The session and what derives from it; replaced by the loop when the
	// lease is lost, read by Close and crash only after the loop ended.
	sess       *concurrency.Session
	sessCancel context.CancelFunc
	id         string // this client's identity: its lease, in hex

	mu      sync.Mutex // guards the fields below
	index   int
	count   int
	clients map[string]int // live clients per zone; never modified, replaced
	known   bool
	closed  bool
	changed chan struct{} // closed and replaced whenever the fields above change
}

var (
	_ pool.Membership     = (*Membership)(nil)
	_ pool.ZoneMembership = (*Membership)(nil)
)

// Join registers this client in the fleet whose keys live under prefix
// (for example "/fleets/checkout-clients/") and starts following its
// peers. ctx bounds the registration only (granting the lease); the
// Membership lives until Close. The client's place is known once it holds
// a slot, shortly after Join returns; Watch and Place report it. Join
// fails for a nil client, an empty prefix, a negative TTL, or when etcd
// cannot grant a lease.
func Join(ctx context.Context, cli *clientv3.Client, prefix string, o Options) (*Membership, error) {
	switch {
	case cli == nil:
		return nil, errors.New("etcdmembership: nil etcd client")
	case prefix == "":
		return nil, errors.New("etcdmembership: empty prefix")
	case o.TTL < 0:
		return nil, fmt.Errorf("etcdmembership: negative TTL %v", o.TTL)
	}
	ttl := o.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	ttl = max(ttl, MinTTL)
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	m := &Membership{
		cli:     cli,
		prefix:  prefix,
		slots:   prefix + "slots/",
		zones:   prefix + "zones/",
		zone:    o.Zone,
		ttl:     int64(math.Ceil(ttl.Seconds())),
		done:    make(chan struct{}),
		changed: make(chan struct{}),
	}
	if err := m.newSession(ctx); err != nil {
		return nil, err
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	go m.run()
	return m, nil
}

// newSession grants a lease (ctx bounds the grant), keeps it alive, and
// records the client's zone under it.
func (m *Membership) newSession(ctx context.Context) error {
	lease, err := m.cli.Grant(ctx, m.ttl)
	if err != nil {
		return fmt.Errorf("etcdmembership: grant lease: %w", err)
	}
	// The session's context outlives the loop's, so that Close can still
	// revoke the lease after stopping the loop.
	sessCtx, sessCancel := context.WithCancel(context.Background())
	sess, err := concurrency.NewSession(m.cli, concurrency.WithLease(lease.ID),
		concurrency.WithTTL(int(m.ttl)), concurrency.WithContext(sessCtx))
	if err != nil {
		sessCancel()
		_, _ = m.cli.Revoke(ctx, lease.ID)
		return fmt.Errorf("etcdmembership: keep lease alive: %w", err)
	}
	id := strconv.FormatInt(int64(lease.ID), 16)
	if m.zone != "" {
		// Before any slot: whoever sees the slot sees the zone too.
		if _, err := m.cli.Put(ctx, m.zones+id, m.zone, clientv3.WithLease(lease.ID)); err != nil {
			sessCancel()
			_, _ = m.cli.Revoke(ctx, lease.ID)
			return fmt.Errorf("etcdmembership: record zone: %w", err)
		}
	}
	m.sess, m.sessCancel, m.id = sess, sessCancel, id
	return nil
}

// Place returns the client's index and the fleet's count, and whether they
// are known yet.
func (m *Membership) Place() (index, count int, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.index, m.count, m.known
}

// Watch implements pool.Membership: it calls notify with the client's
// place once it is known and on every change, until ctx ends (it returns
// ctx's error) or the Membership is closed (it returns ErrClosed).
func (m *Membership) Watch(ctx context.Context, notify func(index, count int)) error {
	return watchValue(ctx, m,
		func() [2]int { return [2]int{m.index, m.count} },
		func(a, b [2]int) bool { return a == b },
		func(p [2]int) { notify(p[0], p[1]) })
}

// watchValue calls notify with get's value (read with m.mu held) once the
// place is known and whenever it differs from the last delivered, until
// ctx ends (it returns ctx's error) or the Membership is closed (it
// returns ErrClosed).
func watchValue[T any](ctx context.Context, m *Membership, get func() T, equal func(a, b T) bool, notify func(T)) error {
	delivered := false
	var last T
	for {
		m.mu.Lock()
		v, known, closed, changed := get(), m.known, m.closed, m.changed
		m.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if known && (!delivered || !equal(v, last)) {
			notify(v)
			delivered, last = true, v
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// Close leaves the fleet: it stops following the peers and revokes the
// lease, so that the slot is freed at once and the peers re-number. It is
// idempotent; later Watch calls return ErrClosed.
func (m *Membership) Close() error {
	if !m.stop() {
		return nil
	}
	err := m.sess.Close()
	m.sessCancel()
	if err != nil {
		return fmt.Errorf("etcdmembership: revoke lease: %w", err)
	}
	return nil
}

// stop ends the loop and marks the Membership closed; it reports whether
// this call did it.
func (m *Membership) stop() bool {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return false
	}
	m.closed = true
	close(m.changed)
	m.mu.Unlock()
	m.cancel()
	<-m.done
	return true
}

// setPlace publishes a place and the clients per zone to the watchers when
// they differ from the last.
func (m *Membership) setPlace(index, count int, clients map[string]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || (m.known && m.index == index && m.count == count && maps.Equal(m.clients, clients)) {
		return
	}
	m.index, m.count, m.clients, m.known = index, count, clients, true
	close(m.changed)
	m.changed = make(chan struct{})
}

// run follows the slots until the Membership is closed. When the lease is
// lost without Close (etcd expired it, say after a partition longer than
// the TTL), the slot went with it: run takes a new lease and joins again,
// and until the new slot is known the pools keep their last place.
func (m *Membership) run() {
	defer close(m.done)
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		_ = m.follow() // a failed request or a broken watch: start again
		for {
			retry.Reset(retryEvery)
			select {
			case <-m.ctx.Done():
				return
			case <-retry.C:
			}
			select {
			case <-m.sess.Done():
				m.sessCancel()
				if err := m.newSession(m.ctx); err != nil {
					continue // etcd unreachable: try again
				}
			default:
			}
			break
		}
	}
}

// follow watches the slots and the zones and acts on every change until
// an error, the lease's end, or Close.
func (m *Membership) follow() error {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(m.ctx))
	defer cancel()
	resp, err := m.cli.Get(ctx, m.prefix, clientv3.WithPrefix())
	if err != nil {
		return err
	}
	// The keys as of the last event seen: read once, then kept up to date
	// from the watch, so an event costs etcd nothing more.
	view := make(map[string]*mvccpb.KeyValue, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		view[string(kv.Key)] = kv
	}
	wch := m.cli.Watch(ctx, m.prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	for {
		var kvs []*mvccpb.KeyValue
		zones := make(map[string]string) // client id → zone
		for k, kv := range view {
			switch {
			case strings.HasPrefix(k, m.slots):
				kvs = append(kvs, kv)
			case strings.HasPrefix(k, m.zones):
				zones[strings.TrimPrefix(k, m.zones)] = string(kv.Value)
			}
		}
		if err := m.act(ctx, kvs, zones); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.sess.Done():
			return errors.New("etcdmembership: lease lost")
		case w, ok := <-wch:
			if !ok {
				return errors.New("etcdmembership: watch closed")
			}
			if err := w.Err(); err != nil {
				return err // compacted, cancelled: read again
			}
			for _, ev := range w.Events {
				switch ev.Type {
				case clientv3.EventTypePut:
					view[string(ev.Kv.Key)] = ev.Kv
				case clientv3.EventTypeDelete:
					delete(view, string(ev.Kv.Key))
				}
			}
		}
	}
}

// slot is one slot key as read from etcd.
type slot struct {
	n      int
	owner  string
	modRev int64
}

// act makes this client's move for the slots seen, if it has one, and
// publishes its place and the clients per zone (zones maps a client's id
// to its zone) when it holds a slot below the count.
func (m *Membership) act(ctx context.Context, kvs []*mvccpb.KeyValue, zones map[string]string) error {
	var slots []slot
	for _, kv := range kvs {
		n, err := strconv.Atoi(strings.TrimPrefix(string(kv.Key), m.slots))
		if err != nil || n < 0 {
			continue // not ours: leave it alone
		}
		slots = append(slots, slot{n: n, owner: string(kv.Value), modRev: kv.ModRevision})
	}
	count := len(slots)
	taken := make(map[int]bool, count)
	mine := -1
	var myRev int64
	for _, s := range slots {
		taken[s.n] = true
		if s.owner == m.id && (mine < 0 || s.n < mine) {
			mine, myRev = s.n, s.modRev
		}
	}
	var holes, extras []int
	for n := range count {
		if !taken[n] {
			holes = append(holes, n)
		}
	}
	for _, s := range slots {
		if s.n >= count {
			extras = append(extras, s.n)
		}
	}
	slices.Sort(extras)
	lease := clientv3.WithLease(m.sess.Lease())
	switch {
	case mine < 0:
		// A newcomer takes the lowest free slot.
		free := count
		if len(holes) > 0 {
			free = holes[0]
		}
		return m.txn(ctx,
			[]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(m.key(free)), "=", 0)},
			clientv3.OpPut(m.key(free), m.id, lease))
	case mine >= count:
		// A slot above the count: move into the hole paired with it.
		j := slices.Index(extras, mine)
		if j < 0 || j >= len(holes) {
			return nil
		}
		return m.txn(ctx,
			[]clientv3.Cmp{
				clientv3.Compare(clientv3.CreateRevision(m.key(holes[j])), "=", 0),
				clientv3.Compare(clientv3.ModRevision(m.key(mine)), "=", myRev),
			},
			clientv3.OpPut(m.key(holes[j]), m.id, lease), clientv3.OpDelete(m.key(mine)))
	}
	clients := make(map[string]int)
	for _, s := range slots {
		clients[zones[s.owner]]++
	}
	m.setPlace(mine, count, clients)
	return nil
}

// txn runs a transaction; losing the race (another client took the slot)
// is no error: the watch brings the new state.
func (m *Membership) txn(ctx context.Context, cmps []clientv3.Cmp, ops ...clientv3.Op) error {
	_, err := m.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	return err
}

func (m *Membership) key(n int) string { return m.slots + strconv.Itoa(n) }
