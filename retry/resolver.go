package retry

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
)

// maxTrackedMethods bounds how many methods of one service (or of the
// default) keep latencies of their own for an adaptive hedging delay;
// methods beyond it share one.
const maxTrackedMethods = 1024

// Resolver tells, for a method, which retry policy or hedging applies to
// it and whether it is idempotent. It is built once from a pool's
// policies ([NewResolver]) and is safe for concurrent use; its lookups
// take no lock and do not allocate (except the first lookup of a method
// under an adaptive service-wide or default hedging, which makes the
// method's latency ring).
type Resolver struct {
	exact   map[string]*entry // "/svc/Method"
	service map[string]*entry // "/svc/"
	def     *entry            // nil: no default

	idemExact   map[string]bool
	idemService map[string]bool

	budget BudgetConfig
}

// entry is the configuration of one name: a retry policy or a hedging.
type entry struct {
	retry   *Policy
	hedging *Hedging

	// Latencies for an adaptive hedging: lat for an exact method, or
	// shared by the methods beyond maxTrackedMethods; perMethod holds a
	// ring per method for a service or the default.
	lat       *latencyRing
	perMethod sync.Map // method name → *latencyRing
	tracked   atomic.Int32
}

// NewResolver builds a Resolver from retry policies and hedgings, each
// validated (errors wrap [ErrInvalidPolicy]) and taken with its defaults.
// A method gets the policy or hedging that names it exactly, else the one
// that names its service, else the default (the policy or hedging without
// Methods). It is an error for a name, or the default, to be given twice,
// in policies and hedgings together: as in gRFC A6, a method is either
// retried or hedged. The pool's budget is the default policy's Budget
// (see [Resolver.Budget]). Neither argument is kept.
func NewResolver(policies []Policy, hedgings []Hedging) (*Resolver, error) {
	r := &Resolver{
		exact:       map[string]*entry{},
		service:     map[string]*entry{},
		idemExact:   map[string]bool{},
		idemService: map[string]bool{},
	}
	var errs []error
	owner := map[string]string{} // name ("" for the default) → who configured it
	add := func(who string, names []string, e *entry) {
		if len(names) == 0 {
			names = []string{""}
		}
		for _, n := range names {
			if prev, dup := owner[n]; dup {
				what := fmt.Sprintf("method %q", n)
				if n == "" {
					what = "the default (no Methods)"
				}
				errs = append(errs, fmt.Errorf("%w: %s is configured twice: by %s and by %s", ErrInvalidPolicy, what, prev, who))
				continue
			}
			owner[n] = who
			switch svc, m, _ := splitMethod(n); {
			case n == "":
				r.def = e
			case m == "" && svc != "":
				r.service[n] = e
			default:
				r.exact[n] = e
			}
		}
	}
	for i, p := range policies {
		if err := p.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("retry policy %d: %w", i, err))
			continue
		}
		p = p.WithDefaults()
		add(fmt.Sprintf("retry policy %d", i), p.Methods, &entry{retry: &p})
		for _, n := range p.Idempotent {
			r.markIdempotent(n)
		}
		if len(p.Methods) == 0 {
			r.budget = p.Budget
		}
	}
	for i, h := range hedgings {
		if err := h.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("hedging %d: %w", i, err))
			continue
		}
		h = h.WithDefaults()
		e := &entry{hedging: &h}
		if h.Adaptive() {
			e.lat = new(latencyRing)
		}
		add(fmt.Sprintf("hedging %d", i), h.Methods, e)
		for _, n := range h.Methods {
			r.markIdempotent(n)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r.budget = r.budget.WithDefaults()
	return r, nil
}

func (r *Resolver) markIdempotent(name string) {
	if _, m, _ := splitMethod(name); m == "" {
		r.idemService[name] = true
	} else {
		r.idemExact[name] = true
	}
}

// Budget returns the configuration of the pool's retry budget, which
// hedges withdraw from too: the default policy's Budget, with defaults
// applied (the defaults if there is no default policy). A nil Resolver
// gives the defaults.
func (r *Resolver) Budget() BudgetConfig {
	if r == nil {
		return BudgetConfig{}.WithDefaults()
	}
	return r.budget
}

// Lookup returns what applies to method, a full method name
// ("/pkg.Service/Method"). A nil Resolver, and a method nothing applies
// to, give the zero MethodConfig: no retry, no hedging, not idempotent.
// It does not allocate, except as said on [Resolver].
func (r *Resolver) Lookup(method string) MethodConfig {
	if r == nil {
		return MethodConfig{}
	}
	svc := servicePrefix(method)
	var mc MethodConfig
	e, exact := r.exact[method]
	if !exact && svc != "" {
		e = r.service[svc]
	}
	if e == nil {
		e = r.def
	}
	if e != nil {
		mc.Retry, mc.Hedging = e.retry, e.hedging
		if e.hedging != nil {
			mc.Idempotent = true
			if e.hedging.Adaptive() {
				mc.lat = e.ring(method, exact)
			}
		}
	}
	mc.Idempotent = mc.Idempotent || r.idemExact[method] || (svc != "" && r.idemService[svc])
	return mc
}

// ForCall is [Resolver.Lookup] with the marks of the call's options
// applied (see [FromCallOptions]): [NotRetryable] leaves neither retry
// nor hedging, [Idempotent] makes the call idempotent. It does not
// allocate, except as said on [Resolver].
func (r *Resolver) ForCall(method string, opts []grpc.CallOption) MethodConfig {
	mc := r.Lookup(method)
	switch m := FromCallOptions(opts); {
	case m.NotRetryable:
		mc.Retry, mc.Hedging = nil, nil
	case m.Idempotent:
		mc.Idempotent = true
	}
	return mc
}

// ring returns the latency ring of method under e.
func (e *entry) ring(method string, exact bool) *latencyRing {
	if exact {
		return e.lat
	}
	if v, ok := e.perMethod.Load(method); ok {
		return v.(*latencyRing)
	}
	if e.tracked.Load() >= maxTrackedMethods {
		return e.lat
	}
	v, loaded := e.perMethod.LoadOrStore(method, new(latencyRing))
	if !loaded {
		e.tracked.Add(1)
	}
	return v.(*latencyRing)
}

// MethodConfig is what applies to one method (see [Resolver.Lookup]). It
// is a small value, safe for concurrent use; its pointers are shared with
// the Resolver and must not be changed.
type MethodConfig struct {
	// Retry is the retry policy of the method, with defaults applied;
	// nil if it is not retried (no policy applies to it, it is hedged,
	// or the call is NotRetryable).
	Retry *Policy
	// Hedging is the method's hedging, with defaults applied; nil if it
	// is not hedged.
	Hedging *Hedging
	// Idempotent: the method (or call) may be retried after its request
	// may have reached the server. Hedged methods are idempotent.
	Idempotent bool

	lat *latencyRing // adaptive hedging only
}

// HedgingDelay returns how long the next hedge waits: Hedging.Delay, or
// for an adaptive Hedging the percentile of the method's recent
// latencies bounded by MinDelay and MaxDelay (MaxDelay while too few
// are known). Zero if the method is not hedged.
func (m MethodConfig) HedgingDelay() time.Duration {
	h := m.Hedging
	switch {
	case h == nil:
		return 0
	case !h.Adaptive() || m.lat == nil:
		return h.Delay
	}
	d, ok := m.lat.current()
	if !ok {
		return h.clampDelay(h.MaxDelay)
	}
	return h.clampDelay(d)
}

// ObserveLatency records the latency of a call's first attempt: the time
// to its answer, or, if a hedge won, the time it ran before it was
// cancelled (a lower bound above the delay, which keeps the percentile
// honest). Failed first attempts should not be recorded: a fast failure
// says nothing of how long an answer takes. It does nothing unless the
// method's hedging is adaptive; it does not allocate.
func (m MethodConfig) ObserveLatency(d time.Duration) {
	if m.lat != nil && m.Hedging != nil {
		m.lat.observe(d, m.Hedging.percentile())
	}
}
