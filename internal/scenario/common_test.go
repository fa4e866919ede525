package scenario

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/pool"
)

// noStallLearning keeps a busy machine from moving a slow stream: the
// round-robin spreads the tests assert are then exact.
var noStallLearning = []pool.Option{pool.WithStreamStallTimeout(0)}

// scenarioContext bounds a scenario test.
func scenarioContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestPercentile(t *testing.T) {
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0, 1}, {50, 5}, {99, 9}, {100, 10}} {
		assert.Equal(t, tc.want, percentile(d, tc.p), "percentile(%v)", tc.p)
	}
	assert.Zero(t, percentile(nil, 50))
}

func TestWrap(t *testing.T) {
	for _, tc := range []struct {
		in    string
		width int
		want  []string
	}{
		{"  short", 20, []string{"  short"}},
		{"  one two three four", 10, []string{"  one two", "    three", "    four"}},
		{"  averyveryverylongword x", 10, []string{"  averyveryverylongword", "    x"}},
	} {
		assert.Equal(t, tc.want, wrap(tc.in, tc.width, "    "), "wrap(%q, %d)", tc.in, tc.width)
	}
}

// Every table, at the example's default sizes and with the widest values
// its cells take (six backends, three-digit counts, error notes), fits in
// MaxWidth columns.
func TestTablesFit(t *testing.T) {
	six := []string{"b1", "b2", "b3", "b4", "b5", "b6"}
	big := []int64{100, 100, 100, 100, 100, 100}
	slow := 1500 * time.Millisecond
	results := []Result{
		&VIPResult{Config: VIPConfig{}.WithDefaults(), Proxy: "haproxy, mode tcp, balance roundrobin", Backends: six[:3],
			Clients: []VIPClient{{Name: "grpc.ClientConn", Conns: 1, Streams: big[:3]},
				{Name: "pool WithSize(6) RoundRobin", Pool: true, Policy: pool.RoundRobin, Conns: 6, Streams: big[:3]},
				{Name: "pool WithSize(6) LeastActive", Pool: true, Policy: pool.LeastActive, Conns: 6, Streams: big[:3]}}},
		&DirectResult{Config: DirectConfig{}.WithDefaults(), Backends: six, Clients: []DirectClient{
			{Name: DirectPickFirst, Conns: 1, Streams: big, Unary: big, CallsPerSec: 99999},
			{Name: DirectRoundRobin, Conns: 6, Streams: big, Unary: big, CallsPerSec: 99999},
			{Name: DirectPoolRR, Conns: 12, Streams: big, Unary: big, CallsPerSec: 99999},
			{Name: DirectPoolRRSize1, Conns: 6, Streams: big, Unary: big, P50: slow, P99: slow, CallsPerSec: 99999},
			{Name: DirectPoolLA, Conns: 12, Streams: big, Unary: big, CallsPerSec: 99999}}},
		&ScaleUpResult{Config: ScaleUpConfig{}.WithDefaults(), Backends: six, Runs: []ScaleUpRun{
			{Name: ScaleUpPoolChurning, Balanced: true, Converge: 12340 * time.Millisecond, Worst: 1.14, Final: big},
			{Name: ScaleUpRRChurning, Balanced: true, Converge: 12340 * time.Millisecond, Worst: 1.14, Final: big},
			{Name: ScaleUpRRNeverEnding, Watched: 8 * time.Second, Final: []int64{100, 100, 100, 0, 0, 0}, Reopened: 1000, Errors: 10000, ErrorsSeen: "Unavailable×3 (\"x\")"},
			{Name: ScaleUpPoolMaxAge, Balanced: true, Converge: 12340 * time.Millisecond, Worst: 1.14, Final: big, Reopened: 1000}}},
		&ScaleDownResult{Config: ScaleDownConfig{}.WithDefaults(), Runs: []ScaleDownRun{
			{Client: "pool RoundRobin", Pool: true, Order: "stop at removal", Calls: 99999, Failed: 9999},
			{Client: "grpc round_robin", Order: "stop 250ms before removal", Calls: 99999, CallsPerSec: 99999, Failed: 9999, AfterRemoval: 9999, P99: slow, Slowest: slow, ErrorsSeen: "Unavailable×3"}}},
		&RecycleResult{Config: RecycleConfig{}.WithDefaults(), Unary: 99999, UnaryFailed: 99999, Streams: 99999, StreamsFailed: 99999, Backends: []RecycleBackend{
			{Name: "b1", Opened: 999, Recycles: 999, MaxDraining: 99, Unary: 99999, Streams: 9999, PoolFailures: 9999}},
			ConnsAtEnd: "b1 ready=2 connecting=0 draining=0; b2 ready=2 connecting=0 draining=0; b3 ready=2 connecting=0 draining=1"},
		&ResilienceResult{Config: ResilienceConfig{}.WithDefaults(3000, time.Second), Clients: []ResilienceClient{
			{Name: ResilienceRR, Calls: 3000, Failed: 3000}, {Name: ResilienceRRRetry, Calls: 3000, Failed: 3000},
			{Name: ResiliencePool, Calls: 3000, Failed: 3000}, {Name: ResiliencePoolBoth, Calls: 3000, Failed: 3000},
			{Name: ResiliencePoolDialRetry, Calls: 3000, Failed: 3000, BadAttempts: 99999, Attempts: 99999, P50: slow, P99: slow}}},
		&ResilienceResult{Slow: true, Config: ResilienceConfig{}.WithDefaults(800, 100*time.Millisecond), Clients: []ResilienceClient{
			{Name: ResilienceRR, Calls: 800, Failed: 800}, {Name: ResilienceRRRetry, Calls: 800, Failed: 800},
			{Name: ResiliencePool, Calls: 800, Failed: 800}, {Name: ResiliencePoolBreaker, Calls: 800, Failed: 800},
			{Name: ResiliencePoolDialRetry, Calls: 800, Failed: 800, BadAttempts: 99999, Attempts: 99999, P50: slow, P99: slow}}},
		&StreamLimitResult{Config: StreamLimitConfig{}.WithDefaults(), Clients: []StreamLimitClient{
			{Name: StreamLimitOneConn, Opened: 300}, {Name: StreamLimitSet, Opened: 300}, {Name: StreamLimitLearned, Opened: 300},
			{Name: StreamLimitFixed, Opened: 300, Last: slow, Conns: 99, Most: 100, Limit: 100, Failed: 300}}},
	}
	for _, r := range results {
		out := r.Table().String()
		for _, l := range strings.Split(out, "\n") {
			assert.LessOrEqual(t, utf8.RuneCountInString(l), MaxWidth, "%T line %q", r, l)
		}
		assert.NotContains(t, r.Summary(), "\n", "%T summary", r)
		assert.LessOrEqual(t, utf8.RuneCountInString(r.Summary()), MaxWidth, "%T summary %q", r, r.Summary())
	}
}

// A table starts with its title and lists its notes, wrapped.
func TestTableFprint(t *testing.T) {
	tab := &Table{Title: "T", Header: []string{"a", "bb"}, Notes: []string{strings.Repeat("word ", 30)}}
	tab.AddRow("x", 1.5)
	lines := strings.Split(strings.TrimSpace(tab.String()), "\n")
	require.GreaterOrEqual(t, len(lines), 5)
	assert.Equal(t, "== T ==", lines[0])
	assert.Equal(t, "a  bb", lines[1])
	assert.Equal(t, "x  1.50", lines[3])
	assert.True(t, strings.HasPrefix(lines[4], "  word"), lines[4])
	assert.True(t, strings.HasPrefix(lines[5], "    word"), lines[5])
}
