package telemetry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc/codes"

	"github.com/grpcpool/grpcpool/breaker"
)

// A Recorder records one pool's metrics. All its methods are safe for
// concurrent use, and all of them do nothing on a nil *Recorder.
type Recorder struct {
	off    bool // a no-op provider: record nothing
	target attribute.KeyValue
	limit  int // backends with their own grpcpool.backend value

	callDur     metric.Float64Histogram
	attemptDur  metric.Float64Histogram
	pickWait    metric.Float64Histogram
	active      metric.Int64UpDownCounter
	transitions metric.Int64Counter
	retries     metric.Int64Counter
	refused     metric.Int64Counter
	recycles    metric.Int64Counter
	drainCuts   metric.Int64Counter
	warmups     metric.Int64Counter
	conns       metric.Int64ObservableGauge
	limits      metric.Int64ObservableGauge
	breakers    metric.Int64ObservableGauge
	meter       metric.Meter

	targetOnly []metric.RecordOption // {target}, for pick.wait

	// backends and methods are copy-on-write maps: readers load them
	// without a lock; writers hold mu, copy, and swap.
	backends cowMap[string, *series]
	methods  cowMap[string, *method]
	mu       sync.Mutex // guards writes to backends, methods and every series.attempts, and own, nmethods
	own      int        // backends in the map with their own value
	nmethods int        // methods in the map with their own value
	other    *series    // the series of every backend over the limit
	otherM   *method    // the method of every method over MethodLimit

	closed  atomic.Bool // Close was called: the gauge callback reports nothing
	regMu   sync.Mutex  // guards reg
	reg     metric.Registration
	gaugeMu sync.Mutex // held by the gauge callback; guards seen and every series' gauge fields
	seen    []*series  // series observed in the running callback
}

// series holds the cached measurement options of one grpcpool.backend
// value: an address, or Other.
type series struct {
	base        []attribute.KeyValue // target, backend
	active      [numKinds][]metric.AddOption
	transitions [numBreakerStates][]metric.AddOption
	recycles    cowMap[string, []metric.AddOption] // by reason; writers hold Recorder.mu
	nreasons    int                                // reasons with their own value; guarded by Recorder.mu
	drainCuts   []metric.AddOption
	conns       [numConnStates][]metric.ObserveOption
	limit       []metric.ObserveOption
	breakers    [numBreakerStates][]metric.ObserveOption
	attempts    cowMap[*method, *localityOpts] // writers hold Recorder.mu

	// Accumulated by the gauge callback; guarded by Recorder.gaugeMu.
	connN    [numConnStates]int64
	limitN   int64
	breakerN [numBreakerStates]int64
	breakerS bool // a breaker state was reported
	seen     bool
}

// method holds the cached options of one grpc.method value.
type method struct {
	attr    attribute.KeyValue
	calls   codeOpts
	retries [numRetryKinds][]metric.AddOption
	refused []metric.AddOption
}

// codeOpts caches, per status code, the options of one histogram
// sample; each is built on first use.
type codeOpts [numCodes]atomic.Pointer[[]metric.RecordOption]

// New makes the Recorder of the pool of target, creating every
// instrument on mp's meter named ScopeName. A nil mp means the global
// provider, otel.GetMeterProvider(), so nothing is recorded until the
// application installs one; a noop.MeterProvider makes a Recorder that
// records nothing at almost no cost. backendLimit is how many distinct
// backends get their own grpcpool.backend value at a time; further ones
// share Other, 0 puts every backend under Other, negative is an error.
func New(mp metric.MeterProvider, target string, backendLimit int) (*Recorder, error) {
	if backendLimit < 0 {
		return nil, fmt.Errorf("telemetry: backend limit %d is negative", backendLimit)
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	r := &Recorder{target: attribute.String(AttrTarget, target), limit: backendLimit}
	switch mp.(type) {
	case noop.MeterProvider, *noop.MeterProvider:
		r.off = true
		return r, nil
	}
	m := mp.Meter(ScopeName)
	r.meter = m
	var errs []error
	hist := func(name, desc string) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithUnit("s"), metric.WithDescription(desc),
			metric.WithExplicitBucketBoundaries(DurationBuckets...))
		errs = append(errs, err)
		return h
	}
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	gauge := func(name, unit, desc string) metric.Int64ObservableGauge {
		g, err := m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return g
	}
	r.callDur = hist(CallDuration, "Duration of logical calls, from Invoke or NewStream to the final status, retries and hedges included.")
	r.attemptDur = hist(AttemptDuration, "Duration of each attempt of a call on one backend.")
	r.pickWait = hist(PickWaitTime, "Time a call waited for a connection that could take it.")
	active, err := m.Int64UpDownCounter(BackendActive, metric.WithUnit("{call}"),
		metric.WithDescription("Unary calls and streams in flight on a backend."))
	errs = append(errs, err)
	r.active = active
	r.transitions = counter(BreakerTrans, "{transition}", "Circuit breaker state changes, by the state entered.")
	r.retries = counter(RetryAttempts, "{attempt}", "Attempts beyond a call's first: retries and hedges.")
	r.refused = counter(RetryRefusals, "{attempt}", "Retries and hedges the retry budget refused.")
	r.recycles = counter(Recycles, "{connection}", "Connections retired, by reason.")
	r.drainCuts = counter(DrainTimeouts, "{connection}", "Connections closed by the drain timeout while they still carried calls or streams.")
	r.warmups, err = warmupInstrument(m)
	errs = append(errs, err)
	r.conns = gauge(Connections, "{connection}", "Connections of a backend, by state.")
	r.breakers = gauge(BreakerStates, "{backend}", "Backends by the state of their circuit breaker: 1 for the state a backend is in (under other: how many are in it).")
	r.limits = gauge(StreamLimits, "{stream}", "Streams one connection of a backend may carry, configured or learned; absent while unknown.")
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	r.targetOnly = recordOpts(attribute.NewSet(r.target))
	r.other = r.newSeries(Other)
	r.otherM = r.newMethod(Other)
	return r, nil
}

func addOpts(s attribute.Set) []metric.AddOption {
	return []metric.AddOption{metric.WithAttributeSet(s)}
}

func recordOpts(s attribute.Set) []metric.RecordOption {
	return []metric.RecordOption{metric.WithAttributeSet(s)}
}

func observeOpts(s attribute.Set) []metric.ObserveOption {
	return []metric.ObserveOption{metric.WithAttributeSet(s)}
}

// set makes the attribute set of base plus extra.
func set(base []attribute.KeyValue, extra ...attribute.KeyValue) attribute.Set {
	kv := make([]attribute.KeyValue, 0, len(base)+len(extra))
	kv = append(append(kv, base...), extra...)
	return attribute.NewSet(kv...)
}

func (r *Recorder) newSeries(label string) *series {
	s := &series{base: []attribute.KeyValue{r.target, attribute.String(AttrBackend, label)}}
	for k := range numKinds {
		s.active[k] = addOpts(set(s.base, attribute.String(AttrKind, k.String())))
	}
	for b := range numBreakerStates {
		s.transitions[b] = addOpts(set(s.base, attribute.String(AttrBreakerState, breakerNames[b])))
	}
	s.drainCuts = addOpts(set(s.base))
	for c := range numConnStates {
		s.conns[c] = observeOpts(set(s.base, attribute.String(AttrConnState, c.String())))
	}
	s.limit = observeOpts(set(s.base))
	for b := range numBreakerStates {
		s.breakers[b] = observeOpts(set(s.base, attribute.String(AttrBreakerState, breakerNames[b])))
	}
	return s
}

func (r *Recorder) newMethod(name string) *method {
	m := &method{attr: attribute.String(AttrMethod, name)}
	base := []attribute.KeyValue{r.target, m.attr}
	for k := range numRetryKinds {
		m.retries[k] = addOpts(set(base, attribute.String(AttrRetryKind, k.String())))
	}
	m.refused = addOpts(set(base))
	return m
}

// series returns the series of addr, adding it if it is new.
func (r *Recorder) series(addr string) *series {
	if s, ok := r.backends.get(addr); ok {
		return s
	}
	return r.backends.add(&r.mu, addr, func() (*series, bool) {
		if r.own >= r.limit {
			return r.other, true
		}
		r.own++
		return r.newSeries(addr), true
	})
}

// ForgetBackend releases addr's grpcpool.backend value, so that a later
// backend can have one of its own. Call it when the pool has removed the
// backend and nothing is in flight on it any more: an Active(-1) after it
// would go to another series. The SDK keeps the series it already
// exported, as its temporality and cardinality limit decide.
func (r *Recorder) ForgetBackend(addr string) {
	if r == nil || r.off {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.backends.get(addr)
	if !ok {
		return
	}
	if s != r.other {
		r.own--
	}
	r.backends.deleteLocked(addr)
}

// method returns the method of fullMethod ("/pkg.Service/Method"); its
// grpc.method value is the name without the leading slash, as in gRFC A66.
func (r *Recorder) method(fullMethod string) *method {
	if m, ok := r.methods.get(fullMethod); ok {
		return m
	}
	return r.methods.add(&r.mu, fullMethod, func() (*method, bool) {
		if r.nmethods >= MethodLimit {
			// Remember it as other, but not without bound.
			return r.otherM, r.methods.len() < 4*MethodLimit
		}
		r.nmethods++
		return r.newMethod(strings.TrimPrefix(fullMethod, "/")), true
	})
}

// callOpts returns the options of a call.duration sample.
func (r *Recorder) callOpts(m *method, c codes.Code) []metric.RecordOption {
	i := codeIndex(c)
	if o := m.calls[i].Load(); o != nil {
		return *o
	}
	o := recordOpts(attribute.NewSet(r.target, m.attr, attribute.String(AttrStatus, codeNames[i])))
	m.calls[i].CompareAndSwap(nil, &o)
	return *m.calls[i].Load()
}

// attemptOpts returns the options of an attempt.duration sample.
func (r *Recorder) attemptOpts(s *series, m *method, c codes.Code, loc Locality) []metric.RecordOption {
	byLoc, ok := s.attempts.get(m)
	if !ok {
		byLoc = s.attempts.add(&r.mu, m, func() (*localityOpts, bool) { return new(localityOpts), true })
	}
	loc = localityIndex(loc)
	byCode := &byLoc[loc]
	i := codeIndex(c)
	if o := byCode[i].Load(); o != nil {
		return *o
	}
	o := recordOpts(set(s.base, append([]attribute.KeyValue{m.attr, attribute.String(AttrStatus, codeNames[i])}, loc.attrs()...)...))
	byCode[i].CompareAndSwap(nil, &o)
	return *byCode[i].Load()
}

// CallDone records one logical call of fullMethod ("/pkg.Service/Method"),
// from Invoke or NewStream to its final status code, retries and hedges
// included: one grpcpool.client.call.duration sample.
func (r *Recorder) CallDone(ctx context.Context, fullMethod string, code codes.Code, d time.Duration) {
	if r == nil || r.off || !r.callDur.Enabled(ctx) {
		return
	}
	r.callDur.Record(ctx, d.Seconds(), r.callOpts(r.method(fullMethod), code)...)
}

// AttemptDone records one attempt of a call on backend: one
// grpcpool.client.attempt.duration sample.
func (r *Recorder) AttemptDone(ctx context.Context, fullMethod string, code codes.Code, backend string, d time.Duration) {
	r.AttemptDoneIn(ctx, fullMethod, code, backend, LocalityNone, d)
}

// AttemptDoneIn is AttemptDone with the attempt's grpcpool.locality
// (none: no such attribute).
func (r *Recorder) AttemptDoneIn(ctx context.Context, fullMethod string, code codes.Code, backend string, loc Locality, d time.Duration) {
	if r == nil || r.off || !r.attemptDur.Enabled(ctx) {
		return
	}
	r.attemptDur.Record(ctx, d.Seconds(), r.attemptOpts(r.series(backend), r.method(fullMethod), code, loc)...)
}

// Active adds delta to the calls (KindUnary) or streams (KindStream) in
// flight on backend: +1 when one is placed, -1 when it ends.
func (r *Recorder) Active(backend string, kind Kind, delta int64) {
	if r == nil || r.off || !r.active.Enabled(context.Background()) {
		return
	}
	r.active.Add(context.Background(), delta, r.series(backend).active[kind%numKinds]...)
}

// BreakerTransition records that backend's breaker entered state to.
func (r *Recorder) BreakerTransition(backend string, to breaker.State) {
	if r == nil || r.off || !r.transitions.Enabled(context.Background()) {
		return
	}
	r.transitions.Add(context.Background(), 1, r.series(backend).transitions[breakerIndex(to)]...)
}

// RetryAttempt records an attempt beyond a call's first: a retry or a
// hedge.
func (r *Recorder) RetryAttempt(ctx context.Context, fullMethod string, kind RetryKind) {
	if r == nil || r.off || !r.retries.Enabled(ctx) {
		return
	}
	r.retries.Add(ctx, 1, r.method(fullMethod).retries[kind%numRetryKinds]...)
}

// RetryRefused records a retry or hedge the retry budget did not allow.
func (r *Recorder) RetryRefused(ctx context.Context, fullMethod string) {
	if r == nil || r.off || !r.refused.Enabled(ctx) {
		return
	}
	r.refused.Add(ctx, 1, r.method(fullMethod).refused...)
}

// Recycle records that a connection of backend was retired, and why:
// the pool's own reason ("max_age", "idle", "removed", "growth_failed",
// …). A backend's first ReasonLimit distinct reasons get their own
// value; further ones, and "", are Other.
func (r *Recorder) Recycle(backend, reason string) {
	if r == nil || r.off || !r.recycles.Enabled(context.Background()) {
		return
	}
	s := r.series(backend)
	opts, ok := s.recycles.get(reason)
	if !ok {
		opts = s.recycles.add(&r.mu, reason, func() ([]metric.AddOption, bool) {
			name := reason
			if name == "" || s.nreasons >= ReasonLimit {
				name = Other
			} else {
				s.nreasons++
			}
			return addOpts(set(s.base, attribute.String(AttrReason, name))), s.recycles.len() < 4*ReasonLimit
		})
	}
	r.recycles.Add(context.Background(), 1, opts...)
}

// DrainTimeout records that the drain timeout closed a connection of
// backend while it still carried calls or streams, which then failed.
func (r *Recorder) DrainTimeout(backend string) {
	if r == nil || r.off || !r.drainCuts.Enabled(context.Background()) {
		return
	}
	r.drainCuts.Add(context.Background(), 1, r.series(backend).drainCuts...)
}

// PickWait records how long a call waited for a connection that could
// take it. Calls that found one at once need not report it.
func (r *Recorder) PickWait(ctx context.Context, d time.Duration) {
	if r == nil || r.off || !r.pickWait.Enabled(ctx) {
		return
	}
	r.pickWait.Record(ctx, d.Seconds(), r.targetOnly...)
}

// cowMap is a map read without a lock and written by copying it: reads
// load the current map; writes, made with a lock held, copy it, change
// the copy and publish it. Its zero value is empty.
type cowMap[K comparable, V any] struct{ p atomic.Pointer[map[K]V] }

func (c *cowMap[K, V]) get(k K) (V, bool) {
	var zero V
	m := c.p.Load()
	if m == nil {
		return zero, false
	}
	v, ok := (*m)[k]
	return v, ok
}

// add returns k's value, or, with mu (the lock of the writers) held,
// the one newV returns, kept when keep is true.
func (c *cowMap[K, V]) add(mu *sync.Mutex, k K, newV func() (v V, keep bool)) V {
	mu.Lock()
	defer mu.Unlock()
	if v, ok := c.get(k); ok {
		return v
	}
	v, keep := newV()
	if keep {
		c.setLocked(k, v)
	}
	return v
}

func (c *cowMap[K, V]) len() int {
	if m := c.p.Load(); m != nil {
		return len(*m)
	}
	return 0
}

// setLocked publishes a copy with k set to v; the caller holds the lock
// of the writers.
func (c *cowMap[K, V]) setLocked(k K, v V) {
	next := make(map[K]V, c.len()+1)
	if m := c.p.Load(); m != nil {
		maps.Copy(next, *m)
	}
	next[k] = v
	c.p.Store(&next)
}

// deleteLocked publishes a copy without k; the caller holds the lock of
// the writers.
func (c *cowMap[K, V]) deleteLocked(k K) {
	m := c.p.Load()
	if m == nil {
		return
	}
	next := maps.Clone(*m)
	delete(next, k)
	c.p.Store(&next)
}
