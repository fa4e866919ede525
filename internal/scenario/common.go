package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/pool"
)

// roundRobinConfig is the service config that makes a grpc.ClientConn
// balance per call with grpc-go's round_robin.
const roundRobinConfig = `{"loadBalancingConfig":[{"round_robin":{}}]}`

// balanced is the max/mean spread the scenarios count as balanced.
const balanced = 1.1

var insecureCreds = grpc.WithTransportCredentials(insecure.NewCredentials())

// policyName is a policy as Go code names it: "RoundRobin".
func policyName(p pool.Policy) string {
	switch p {
	case pool.RoundRobin:
		return "RoundRobin"
	case pool.LeastActive:
		return "LeastActive"
	case pool.ConsistentHash:
		return "ConsistentHash"
	case pool.PeakEWMA:
		return "PeakEWMA"
	}
	return p.String()
}

// Policies lists the policies ParsePolicy knows, as Go code names them.
var Policies = []pool.Policy{pool.RoundRobin, pool.LeastActive, pool.PeakEWMA, pool.ConsistentHash}

// ParsePolicy returns the policy named s, spelt as Go code names it
// ("PeakEWMA") or as pool.Policy's String does ("peak_ewma").
func ParsePolicy(s string) (pool.Policy, error) {
	for _, p := range Policies {
		if s == policyName(p) || s == p.String() {
			return p, nil
		}
	}
	names := make([]string, len(Policies))
	for i, p := range Policies {
		names[i] = policyName(p)
	}
	return 0, fmt.Errorf("unknown policy %q (have %s)", s, strings.Join(names, ", "))
}

// policyOption returns the option that sets the policy p when p is set,
// for the scenarios' Policy fields.
func policyOption(p *pool.Policy) []pool.Option {
	if p == nil {
		return nil
	}
	return []pool.Option{pool.WithPolicy(*p)}
}

// policyOf returns the policy cc balances with when it is a pool, as Go
// code names it, or "" for a grpc.ClientConn.
func policyOf(cc grpc.ClientConnInterface) string {
	if p, ok := cc.(*pool.Pool); ok {
		return policyName(p.Stats().Policy)
	}
	return ""
}

// fleet is a set of Echo backends on loopback TCP.
type fleet struct {
	servers []*backend.Server
}

// startFleet starts n backends named b1…bn.
func startFleet(n int) (*fleet, error) {
	f := &fleet{}
	for i := range n {
		s, err := backend.Listen(backend.Options{Name: fmt.Sprintf("b%d", i+1)})
		if err != nil {
			f.stop()
			return nil, fmt.Errorf("scenario: starting backend: %w", err)
		}
		f.servers = append(f.servers, s)
	}
	return f, nil
}

// stop stops every backend at once. It is idempotent.
func (f *fleet) stop() {
	var wg sync.WaitGroup
	for _, s := range f.servers {
		wg.Go(s.Stop)
	}
	wg.Wait()
}

func (f *fleet) addrs() []string {
	out := make([]string, len(f.servers))
	for i, s := range f.servers {
		out[i] = s.Addr()
	}
	return out
}

func (f *fleet) names() []string {
	out := make([]string, len(f.servers))
	for i, s := range f.servers {
		out[i] = s.Name()
	}
	return out
}

// nameOf returns address, name pairs for a strings.Replacer.
func nameOf(f *fleet) []string {
	var out []string
	for _, s := range f.servers {
		out = append(out, s.Addr(), s.Name())
	}
	return out
}

// active returns the streams open on each backend now.
func (f *fleet) active() []int64 {
	out := make([]int64, len(f.servers))
	for i, s := range f.servers {
		out[i] = s.ActiveStreams()
	}
	return out
}

// unary returns the unary calls each backend has received so far.
func (f *fleet) unary() []int64 {
	out := make([]int64, len(f.servers))
	for i, s := range f.servers {
		out[i] = s.Unary()
	}
	return out
}

// waitActive waits until the backends carry want streams in all.
func (f *fleet) waitActive(ctx context.Context, want int64, timeout time.Duration) error {
	return waitUntil(ctx, timeout, func() bool { return sum(f.active()) == want }, func() string {
		return fmt.Sprintf("streams on the backends: %s, want %d in all", counts(f.active()), want)
	})
}

// manualResolver returns a manual resolver reporting addrs, for one client.
func manualResolver(addrs []string) *manual.Resolver {
	r := manual.NewBuilderWithScheme("scenario")
	r.InitialState(resolverState(addrs))
	return r
}

// manualTarget is the target a client of a manualResolver dials.
const manualTarget = "scenario:///echo.scenario.test"

func resolverState(addrs []string) resolver.State {
	s := resolver.State{Addresses: make([]resolver.Address, len(addrs))}
	for i, a := range addrs {
		s.Addresses[i] = resolver.Address{Addr: a}
	}
	return s
}

// newRoundRobin returns a grpc.ClientConn balancing with round_robin over
// what r resolves.
func newRoundRobin(r *manual.Resolver) (*grpc.ClientConn, error) {
	return grpc.NewClient(manualTarget, insecureCreds, grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(roundRobinConfig))
}

// newPool returns a pool over what r resolves, ready to take calls.
func newPool(ctx context.Context, r *manual.Resolver, log *slog.Logger, opts ...pool.Option) (*pool.Pool, error) {
	opts = append([]pool.Option{pool.WithResolvers(r), pool.WithDialOptions(insecureCreds)}, opts...)
	if log != nil {
		opts = append(opts, pool.WithLogger(log))
	}
	p, err := pool.New(manualTarget, opts...)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.WaitForReady(wctx); err != nil {
		_ = p.Close()
		return nil, fmt.Errorf("scenario: pool not ready: %w", err)
	}
	return p, nil
}

// waitAllReady waits until every resolved backend of p has want ready
// connections, so a measurement does not start on a half-connected pool.
func waitAllReady(ctx context.Context, p *pool.Pool, backends, want int) error {
	return waitUntil(ctx, 10*time.Second, func() bool {
		n := 0
		for _, b := range p.Stats().Backends {
			if !b.Removed && b.Ready >= want {
				n++
			}
		}
		return n >= backends
	}, func() string { return fmt.Sprintf("pool connections: %s", describeConns(p.Stats())) })
}

func describeConns(st pool.Stats) string {
	var parts []string
	for _, b := range st.Backends {
		parts = append(parts, fmt.Sprintf("%s ready=%d connecting=%d draining=%d", b.Addr, b.Ready, b.Connecting, b.Draining))
	}
	return strings.Join(parts, "; ")
}

// waitUntil polls cond every 10 ms until it holds, ctx ends or timeout
// passes; the error then says what was seen.
func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool, seen func() string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			if cond() {
				return nil
			}
			return fmt.Errorf("scenario: timed out after %v: %s", timeout, seen())
		case <-t.C:
		}
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// bidi is one open Bidi stream.
type bidi struct {
	s      grpc.BidiStreamingClient[echopb.EchoRequest, echopb.EchoResponse]
	cancel context.CancelFunc
	at     string // the backend that answered
}

// openBidi opens a Bidi stream and waits for one echo, so that the server
// counts it as open when openBidi returns.
func openBidi(ctx context.Context, cc grpc.ClientConnInterface) (*bidi, error) {
	ctx, cancel := context.WithCancel(ctx)
	s, err := echopb.NewEchoClient(cc).Bidi(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	b := &bidi{s: s, cancel: cancel}
	resp, err := b.roundTrip("hello")
	if err != nil {
		cancel()
		return nil, err
	}
	b.at = resp.GetBackend()
	return b, nil
}

func (b *bidi) roundTrip(msg string) (*echopb.EchoResponse, error) {
	if err := b.s.Send(&echopb.EchoRequest{Message: msg}); err != nil {
		// The real error comes from RecvMsg.
		if _, rerr := b.s.Recv(); rerr != nil {
			return nil, rerr
		}
		return nil, err
	}
	return b.s.Recv()
}

// end closes the stream cleanly: CloseSend, then read to io.EOF.
func (b *bidi) end() error {
	defer b.cancel()
	if err := b.s.CloseSend(); err != nil {
		return err
	}
	for {
		if _, err := b.s.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// openStreams opens n Bidi streams on cc, par at a time.
func openStreams(ctx context.Context, cc grpc.ClientConnInterface, n int) ([]*bidi, error) {
	const par = 32
	out := make([]*bidi, n)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(par, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				out[i], errs[i] = openBidi(ctx, cc)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		endStreams(out)
		return nil, fmt.Errorf("scenario: opening streams: %w", err)
	}
	return out, nil
}

// endStreams ends every stream (nil entries are skipped) and returns how
// many ended with an error.
func endStreams(ss []*bidi) int {
	var failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for _, s := range ss {
		if s == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if s.end() != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

// unaryCall makes one Unary call with a deadline.
func unaryCall(ctx context.Context, c echopb.EchoClient, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := c.Unary(ctx, &echopb.EchoRequest{Message: "ping"})
	return err
}

// errCount counts errors by status code, keeping one example of each.
type errCount struct {
	mu    sync.Mutex
	n     int
	codes map[codes.Code]int
	first map[codes.Code]string
}

func (e *errCount) add(err error) {
	st := status.Convert(err)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.codes == nil {
		e.codes = make(map[codes.Code]int)
		e.first = make(map[codes.Code]string)
	}
	e.n++
	e.codes[st.Code()]++
	if _, ok := e.first[st.Code()]; !ok {
		e.first[st.Code()] = st.Message()
	}
}

func (e *errCount) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

// String lists the codes seen, with one message each: "Unavailable×3 (…)".
func (e *errCount) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == 0 {
		return "none"
	}
	var parts []string
	for c, n := range e.codes {
		parts = append(parts, fmt.Sprintf("%s×%d (%q)", c, n, e.first[c]))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func sum(xs []int64) int64 {
	var s int64
	for _, x := range xs {
		s += x
	}
	return s
}

func sub(a, b []int64) []int64 {
	out := make([]int64, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

// counts formats per-backend numbers as "100 / 98 / 102".
func counts(xs []int64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, " / ")
}

// percentile returns the p-th percentile (0–100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

// ms formats a duration in milliseconds with sensible precision.
func ms(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	}
	return d.Round(time.Millisecond).String()
}

// jittered returns d scaled by a random factor in [1-f, 1+f].
func jittered(d time.Duration, f float64) time.Duration {
	return time.Duration(float64(d) * (1 - f + 2*f*rand.Float64()))
}

// pacer runs workers that each call f every interval, on a fixed schedule
// (a late call does not shift the next ones), until ctx ends.
func pace(ctx context.Context, workers int, interval time.Duration, f func(ctx context.Context)) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			// Spread the workers' phases over one interval.
			next := time.Now().Add(interval * time.Duration(w) / time.Duration(workers))
			t := time.NewTimer(time.Until(next))
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				f(ctx)
				next = next.Add(interval)
				if d := time.Until(next); d > 0 {
					t.Reset(d)
				} else {
					next = time.Now() // fell behind: do not burst
					t.Reset(0)
				}
			}
		})
	}
	return &wg
}
