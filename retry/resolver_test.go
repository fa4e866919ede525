package retry_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/retry"
)

func TestResolverPrecedence(t *testing.T) {
	r, err := retry.NewResolver([]retry.Policy{
		{MaxAttempts: 2}, // default
		{MaxAttempts: 3, Methods: []string{"/pkg.Svc/"}},    // service
		{MaxAttempts: 4, Methods: []string{"/pkg.Svc/Get"}}, // exact
	}, []retry.Hedging{
		{Delay: time.Millisecond, Methods: []string{"/pkg.Svc/Search", "/pkg.Hedged/"}},
	})
	require.NoError(t, err)
	tests := []struct {
		method   string
		attempts int  // of the retry policy; 0: none
		hedged   bool // hedging applies
	}{
		{"/pkg.Svc/Get", 4, false},       // exact beats service
		{"/pkg.Svc/Put", 3, false},       // service beats default
		{"/pkg.Other/Get", 2, false},     // default
		{"/pkg.Svc/Search", 0, true},     // exact hedging beats the service's retry
		{"/pkg.Hedged/Any", 0, true},     // service hedging beats the default retry
		{"malformed", 2, false},          // not a method name: the default
		{"/pkg.Svc/Get/extra", 2, false}, // nor is this
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			mc := r.Lookup(tt.method)
			if tt.attempts == 0 {
				assert.Nil(t, mc.Retry)
			} else if assert.NotNil(t, mc.Retry) {
				assert.Equal(t, tt.attempts, mc.Retry.MaxAttempts)
			}
			assert.Equal(t, tt.hedged, mc.Hedging != nil)
			assert.Equal(t, tt.hedged, mc.Idempotent, "hedged methods, and only they here, are idempotent")
		})
	}
}

func TestResolverNoDefault(t *testing.T) {
	r, err := retry.NewResolver([]retry.Policy{{Methods: []string{"/a/"}}}, nil)
	require.NoError(t, err)
	assert.Equal(t, retry.MethodConfig{}, r.Lookup("/b/M"), "nothing applies to a method no policy names")
	assert.NotNil(t, r.Lookup("/a/M").Retry)
	assert.Equal(t, retry.BudgetConfig{}.WithDefaults(), r.Budget())

	var nilR *retry.Resolver
	assert.Equal(t, retry.MethodConfig{}, nilR.Lookup("/a/M"))
	assert.Equal(t, retry.BudgetConfig{}.WithDefaults(), nilR.Budget())
}

func TestResolverIdempotent(t *testing.T) {
	r, err := retry.NewResolver([]retry.Policy{
		{MaxAttempts: 1, Idempotent: []string{"/kv.Store/Get", "/kv.Reader/"}}, // default, no retries
		{Methods: []string{"/kv.Store/"}},
	}, nil)
	require.NoError(t, err)
	// Idempotency is a fact about a method: any policy's list counts,
	// whichever policy applies to the method.
	assert.True(t, r.Lookup("/kv.Store/Get").Idempotent)
	assert.Equal(t, retry.DefaultMaxAttempts, r.Lookup("/kv.Store/Get").Retry.MaxAttempts)
	assert.False(t, r.Lookup("/kv.Store/Put").Idempotent)
	assert.True(t, r.Lookup("/kv.Reader/Scan").Idempotent)
	assert.False(t, r.Lookup("/kv.Writer/Scan").Idempotent)
}

func TestResolverBudgetFromDefault(t *testing.T) {
	b := retry.BudgetConfig{Ratio: 0.1, MinPerSecond: 3, Window: 5 * time.Second}
	r, err := retry.NewResolver([]retry.Policy{{Methods: []string{"/a/"}}, {Budget: b}}, nil)
	require.NoError(t, err)
	assert.Equal(t, b, r.Budget())
}

func TestResolverErrors(t *testing.T) {
	tests := []struct {
		name     string
		policies []retry.Policy
		hedgings []retry.Hedging
		want     string
	}{
		{"two default policies", []retry.Policy{{}, {MaxAttempts: 2}}, nil, "the default (no Methods) is configured twice: by retry policy 0 and by retry policy 1"},
		{"default policy and default hedging", []retry.Policy{{}}, []retry.Hedging{{}}, "the default (no Methods) is configured twice"},
		{"method in two policies", []retry.Policy{{Methods: []string{"/a/M"}}, {Methods: []string{"/b/", "/a/M"}}}, nil, `method "/a/M" is configured twice`},
		{"method retried and hedged", []retry.Policy{{Methods: []string{"/a/"}}}, []retry.Hedging{{Methods: []string{"/a/"}}}, `method "/a/" is configured twice: by retry policy 0 and by hedging 0`},
		{"invalid policy", []retry.Policy{{MaxAttempts: -1}}, nil, "retry policy 0"},
		{"invalid hedging", nil, []retry.Hedging{{MaxAttempts: 1}}, "hedging 0"},
		{"budget on a method policy", []retry.Policy{{Methods: []string{"/a/"}, Budget: retry.BudgetConfig{Ratio: 0.5}}}, nil, "may be set only on the default policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := retry.NewResolver(tt.policies, tt.hedgings)
			require.Error(t, err)
			assert.Nil(t, r)
			assert.ErrorIs(t, err, retry.ErrInvalidPolicy)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestResolverForCall(t *testing.T) {
	r, err := retry.NewResolver([]retry.Policy{{}}, []retry.Hedging{{Delay: time.Millisecond, Methods: []string{"/h/"}}})
	require.NoError(t, err)

	mc := r.ForCall("/a/M", nil)
	assert.NotNil(t, mc.Retry)
	assert.False(t, mc.Idempotent)

	mc = r.ForCall("/a/M", []grpc.CallOption{grpc.WaitForReady(true), retry.Idempotent()})
	assert.NotNil(t, mc.Retry)
	assert.True(t, mc.Idempotent)

	mc = r.ForCall("/a/M", []grpc.CallOption{retry.NotRetryable()})
	assert.Nil(t, mc.Retry)

	mc = r.ForCall("/h/M", []grpc.CallOption{retry.NotRetryable(), retry.Idempotent()})
	assert.Nil(t, mc.Retry)
	assert.Nil(t, mc.Hedging, "a NotRetryable call is not hedged")
}

func TestResolverLookupAllocs(t *testing.T) {
	r, err := retry.NewResolver(
		[]retry.Policy{{Idempotent: []string{"/a/Get"}}, {Methods: []string{"/a/"}}},
		[]retry.Hedging{{Methods: []string{"/h/"}}, {Methods: []string{"/x/M"}}})
	require.NoError(t, err)
	opts := []grpc.CallOption{grpc.WaitForReady(true), retry.Idempotent()}
	r.Lookup("/h/M") // makes /h/M's latency ring
	for _, m := range []string{"/a/Get", "/b/M", "/h/M", "/x/M", "bad"} {
		n := testing.AllocsPerRun(100, func() {
			mc := r.ForCall(m, opts)
			mc.ObserveLatency(time.Millisecond)
			_ = mc.HedgingDelay()
		})
		assert.Zero(t, n, "allocations of ForCall(%q)", m)
	}
}

// Methods of a service hedged as a whole keep latencies of their own.
func TestResolverAdaptivePerMethod(t *testing.T) {
	r, err := retry.NewResolver(nil, []retry.Hedging{{Methods: []string{"/s/"}, MaxDelay: time.Second}})
	require.NoError(t, err)
	fast, slow := r.Lookup("/s/Fast"), r.Lookup("/s/Slow")
	assert.Equal(t, time.Second, fast.HedgingDelay(), "MaxDelay while no latency is known")
	for range 64 {
		fast.ObserveLatency(time.Millisecond)
		slow.ObserveLatency(100 * time.Millisecond)
	}
	assert.Equal(t, time.Millisecond, r.Lookup("/s/Fast").HedgingDelay())
	assert.Equal(t, 100*time.Millisecond, r.Lookup("/s/Slow").HedgingDelay())
}

func TestFromCallOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []grpc.CallOption
		want retry.CallMarks
	}{
		{"none", nil, retry.CallMarks{}},
		{"others", []grpc.CallOption{grpc.WaitForReady(true), grpc.EmptyCallOption{}}, retry.CallMarks{}},
		{"idempotent", []grpc.CallOption{grpc.WaitForReady(true), retry.Idempotent()}, retry.CallMarks{Idempotent: true}},
		{"not retryable", []grpc.CallOption{retry.NotRetryable()}, retry.CallMarks{NotRetryable: true}},
		{"both: not retryable wins", []grpc.CallOption{retry.Idempotent(), retry.NotRetryable()}, retry.CallMarks{NotRetryable: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, retry.FromCallOptions(tt.opts))
		})
	}
	opts := []grpc.CallOption{grpc.WaitForReady(true), retry.Idempotent(), retry.NotRetryable()}
	assert.Zero(t, testing.AllocsPerRun(100, func() { retry.FromCallOptions(opts) }))
	assert.Zero(t, testing.AllocsPerRun(100, func() { opts[1] = retry.Idempotent(); opts[2] = retry.NotRetryable() }))
}
