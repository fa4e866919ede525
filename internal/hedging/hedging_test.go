package hedging

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/grpcpool/grpcpool/retry"
)

// fakeStep is how one fake attempt behaves: it answers after `after`
// with err, or with a reply holding "attempt n".
type fakeStep struct {
	after time.Duration
	err   error
}

// attemptLog is what a fake attempt saw: when it started (time since the
// test's start), when it returned, and whether it was cancelled.
type attemptLog struct {
	n               int
	start, end      time.Duration
	cancelled       bool
	replyWasCallers bool
}

// fakeAttempts returns an attempt function playing steps (attempt n
// plays steps[n-1]; beyond them, or when admit refuses it:
// ErrNotSent) and the log it fills.
type fakeAttempts struct {
	t0     time.Time
	steps  []fakeStep
	caller any

	mu   sync.Mutex
	logs []attemptLog
}

func (f *fakeAttempts) attempt(ctx context.Context, n int, reply any, admit func() bool) error {
	if n > len(f.steps) || admit != nil && !admit() {
		return ErrNotSent
	}
	l := attemptLog{n: n, start: time.Since(f.t0), replyWasCallers: reply == f.caller}
	s := f.steps[n-1]
	var err error
	t := time.NewTimer(s.after)
	defer t.Stop()
	select {
	case <-t.C:
		err = s.err
		if err == nil {
			reply.(*wrapperspb.StringValue).Value = fmt.Sprintf("attempt %d", n)
		}
	case <-ctx.Done():
		l.cancelled = true
		err = status.FromContextError(ctx.Err()).Err()
	}
	l.end = time.Since(f.t0)
	f.mu.Lock()
	f.logs = append(f.logs, l)
	f.mu.Unlock()
	return err
}

// sorted returns the logs by attempt number.
func (f *fakeAttempts) sorted() []attemptLog {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]attemptLog, len(f.logs))
	for _, l := range f.logs {
		out[l.n-1] = l
	}
	return out
}

// hedgeCase is one run of Do in a synctest bubble.
type hedgeCase struct {
	h       retry.Hedging
	steps   []fakeStep
	budget  *retry.Budget // nil: a disabled (unbounded) budget
	timeout time.Duration // of the caller's context; 0: a minute

	err     error
	reply   *wrapperspb.StringValue
	took    time.Duration
	logs    []attemptLog
	hedges  atomic.Int64 // sent, per onHedge
	refused atomic.Int64 // per onHedge
	ends    []int        // what End was told
}

func (r *hedgeCase) do(t *testing.T) {
	t.Helper()
	res, err := retry.NewResolver(nil, []retry.Hedging{r.h})
	require.NoError(t, err)
	if r.budget == nil {
		r.budget = retry.NewBudget(retry.BudgetConfig{Disabled: true})
	}
	r.reply = &wrapperspb.StringValue{Value: "stale"}
	f := &fakeAttempts{t0: time.Now(), steps: r.steps, caller: r.reply}
	ctx, cancel := context.WithTimeout(t.Context(), cmpOr(r.timeout, time.Minute))
	defer cancel()
	call := Call{
		Config:  res.Lookup("/svc/M"),
		Budget:  r.budget,
		Attempt: f.attempt,
		OnHedge: func(refused bool) {
			if refused {
				r.refused.Add(1)
			} else {
				r.hedges.Add(1)
			}
		},
		End: func(n int) { r.ends = append(r.ends, n) },
	}
	r.err = Do(ctx, call, r.reply)
	r.took = time.Since(f.t0)
	r.logs = f.sorted()
	// Every attempt has returned by the time Do does.
	for _, l := range r.logs {
		assert.LessOrEqual(t, l.end, r.took, "attempt %d returned after Do", l.n)
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

const ms = time.Millisecond

func TestHedgeFirstAnswersBeforeDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := hedgeCase{h: retry.Hedging{Delay: 10 * ms}, steps: []fakeStep{{after: 5 * ms}, {after: ms}}}
		r.do(t)
		require.NoError(t, r.err)
		assert.Equal(t, "attempt 1", r.reply.Value)
		assert.Equal(t, 5*ms, r.took)
		require.Len(t, r.logs, 1, "no hedge before the delay")
		assert.True(t, r.logs[0].replyWasCallers, "attempt 1 writes into the caller's reply")
		assert.Zero(t, r.hedges.Load())
	})
}

func TestHedgeTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := hedgeCase{
			h:     retry.Hedging{Delay: 10 * ms, MaxAttempts: 3},
			steps: []fakeStep{{after: 100 * ms}, {after: 100 * ms}, {after: 5 * ms}},
		}
		r.do(t)
		require.NoError(t, r.err)
		assert.Equal(t, "attempt 3", r.reply.Value, "the winner's reply, copied over the caller's")
		assert.Equal(t, 25*ms, r.took)
		require.Len(t, r.logs, 3)
		for i, want := range []time.Duration{0, 10 * ms, 20 * ms} {
			assert.Equal(t, want, r.logs[i].start, "attempt %d start", i+1)
		}
		assert.True(t, r.logs[0].cancelled, "loser 1 cancelled")
		assert.True(t, r.logs[1].cancelled, "loser 2 cancelled")
		assert.Equal(t, 25*ms, r.logs[0].end, "losers end when the winner answers")
		assert.False(t, r.logs[2].cancelled)
		assert.False(t, r.logs[1].replyWasCallers, "hedges write into replies of their own")
		assert.EqualValues(t, 2, r.hedges.Load())
	})
}

func TestHedgeMaxAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := hedgeCase{
			h:     retry.Hedging{Delay: 10 * ms, MaxAttempts: 2},
			steps: []fakeStep{{after: 100 * ms}, {after: 100 * ms}, {after: ms}, {after: ms}},
		}
		r.do(t)
		require.NoError(t, r.err)
		assert.Equal(t, "attempt 1", r.reply.Value)
		assert.Equal(t, 100*ms, r.took)
		assert.Len(t, r.logs, 2, "no third attempt with MaxAttempts 2")
		assert.True(t, r.logs[1].cancelled)
	})
}

func TestHedgeBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A floor of one retry per second and (almost) no ratio: the first
		// call gets its hedge, the second does not.
		b := retry.NewBudget(retry.BudgetConfig{Ratio: 1e-9, MinPerSecond: 1, Window: time.Second})
		steps := []fakeStep{{after: 100 * ms}, {after: 5 * ms}}

		r := hedgeCase{h: retry.Hedging{Delay: 10 * ms}, steps: steps, budget: b}
		r.do(t)
		require.NoError(t, r.err)
		assert.Equal(t, "attempt 2", r.reply.Value)
		assert.EqualValues(t, 1, r.hedges.Load())

		r = hedgeCase{h: retry.Hedging{Delay: 10 * ms}, steps: steps, budget: b}
		r.do(t)
		require.NoError(t, r.err)
		assert.Equal(t, "attempt 1", r.reply.Value)
		assert.Equal(t, 100*ms, r.took, "no hedge: the budget refused it")
		assert.Len(t, r.logs, 1)
		assert.EqualValues(t, 1, r.refused.Load())

		// The floor comes back with the window.
		time.Sleep(time.Second)
		r = hedgeCase{h: retry.Hedging{Delay: 10 * ms}, steps: steps, budget: b}
		r.do(t)
		assert.Equal(t, "attempt 2", r.reply.Value)
	})
}

func TestHedgeFatalStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Attempt 1 fails fatally before the delay: no hedge.
		r := hedgeCase{
			h:     retry.Hedging{Delay: 10 * ms, MaxAttempts: 3},
			steps: []fakeStep{{after: 5 * ms, err: status.Error(codes.InvalidArgument, "bad")}, {after: ms}},
		}
		r.do(t)
		assert.Equal(t, codes.InvalidArgument, status.Code(r.err))
		assert.Equal(t, 5*ms, r.took)
		assert.Len(t, r.logs, 1)

		// A hedge fails fatally: the call ends with its error, attempt 1
		// is cancelled, no third attempt is sent.
		r = hedgeCase{
			h:     retry.Hedging{Delay: 10 * ms, MaxAttempts: 3, NonFatalCodes: []codes.Code{codes.Unavailable}},
			steps: []fakeStep{{after: 100 * ms}, {after: 2 * ms, err: status.Error(codes.Internal, "boom")}, {after: ms}},
		}
		r.do(t)
		assert.Equal(t, codes.Internal, status.Code(r.err))
		assert.Equal(t, 12*ms, r.took)
		require.Len(t, r.logs, 2)
		assert.True(t, r.logs[0].cancelled)
	})
}

func TestHedgeNonFatalHedgesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		unavailable := status.Error(codes.Unavailable, "down")
		r := hedgeCase{
			h:     retry.Hedging{Delay: 10 * ms, MaxAttempts: 3, NonFatalCodes: []codes.Code{codes.Unavailable}},
			steps: []fakeStep{{after: 2 * ms, err: unavailable}, {after: 100 * ms}, {after: ms}},
		}
		r.do(t)
		require.NoError(t, r.err)
		require.Len(t, r.logs, 3)
		assert.Equal(t, 2*ms, r.logs[1].start, "a non-fatal failure sends the next hedge at once")
		assert.Equal(t, 12*ms, r.logs[2].start, "and the delay runs from that hedge")
		assert.Equal(t, "attempt 3", r.reply.Value)

		// Every attempt fails non-fatally: the last error.
		r = hedgeCase{
			h: retry.Hedging{Delay: 10 * ms, MaxAttempts: 2, NonFatalCodes: []codes.Code{codes.Unavailable}},
			steps: []fakeStep{{after: 2 * ms, err: unavailable},
				{after: 3 * ms, err: status.Error(codes.Unavailable, "also down")}},
		}
		r.do(t)
		assert.Equal(t, "also down", status.Convert(r.err).Message())
		assert.Equal(t, 5*ms, r.took)
	})
}

func TestHedgeNoTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A floor of one retry per second and (almost) no ratio.
		b := retry.NewBudget(retry.BudgetConfig{Ratio: 1e-9, MinPerSecond: 1, Window: time.Second})
		// One backend only: the hedge finds nothing to go to, and the call
		// waits for attempt 1. The hedge takes nothing from the budget and
		// is not counted.
		r := hedgeCase{h: retry.Hedging{Delay: 10 * ms, MaxAttempts: 3}, steps: []fakeStep{{after: 50 * ms}}, budget: b}
		r.do(t)
		require.NoError(t, r.err)
		assert.Equal(t, "attempt 1", r.reply.Value)
		assert.Equal(t, 50*ms, r.took)
		assert.Zero(t, r.hedges.Load(), "a hedge that found no backend was counted")
		assert.Zero(t, r.refused.Load())

		// The budget's one retry is still there for a hedge that is sent.
		r = hedgeCase{h: retry.Hedging{Delay: 10 * ms}, steps: []fakeStep{{after: 100 * ms}, {after: 5 * ms}}, budget: b}
		r.do(t)
		require.NoError(t, r.err)
		assert.Equal(t, "attempt 2", r.reply.Value, "the budget was spent by a hedge that was never sent")
		assert.EqualValues(t, 1, r.hedges.Load())
	})
}

func TestHedgeContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := hedgeCase{
			h:       retry.Hedging{Delay: 10 * ms, MaxAttempts: 3},
			steps:   []fakeStep{{after: time.Second}, {after: time.Second}, {after: time.Second}},
			timeout: 25 * ms,
		}
		r.do(t)
		assert.Equal(t, codes.DeadlineExceeded, status.Code(r.err))
		assert.Equal(t, 25*ms, r.took)
		require.Len(t, r.logs, 3)
		for _, l := range r.logs {
			assert.True(t, l.cancelled, "attempt %d cancelled", l.n)
		}
	})
}

func TestHedgeOneAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		steps := []fakeStep{{after: 100 * ms}, {after: ms}}
		res, err := retry.NewResolver(nil, []retry.Hedging{{Delay: 10 * ms}})
		require.NoError(t, err)
		// A reply that is no pointer: no attempt at all.
		err = Do(t.Context(), Call{
			Config: res.Lookup("/svc/M"),
			Budget: retry.NewBudget(retry.BudgetConfig{}),
			Attempt: func(ctx context.Context, n int, r any, _ func() bool) error {
				assert.Fail(t, fmt.Sprintf("attempt %d made for a reply that is no pointer", n))
				return nil
			},
		}, struct{ v string }{})
		assert.Equal(t, codes.Internal, status.Code(err), "%v", err)

		// No budget: no hedge.
		f := &fakeAttempts{t0: time.Now(), steps: steps}
		err = Do(t.Context(), Call{Config: res.Lookup("/svc/M"), Attempt: f.attempt}, &wrapperspb.StringValue{})
		require.NoError(t, err)
		assert.Len(t, f.sorted(), 1)

		// Not hedged.
		f = &fakeAttempts{t0: time.Now(), steps: steps}
		err = Do(t.Context(), Call{Budget: retry.NewBudget(retry.BudgetConfig{}), Attempt: f.attempt}, &wrapperspb.StringValue{})
		require.NoError(t, err)
		assert.Len(t, f.sorted(), 1)
	})
}

// With an adaptive delay, the engine feeds the method's latencies: after
// enough calls whose first attempt took 4ms, the delay is 4ms; a first
// attempt cancelled by a winning hedge counts with the time it ran.
func TestHedgeAdaptiveDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res, err := retry.NewResolver(nil, []retry.Hedging{{MaxDelay: time.Second}})
		require.NoError(t, err)
		mc := res.Lookup("/svc/M")
		call := func(steps ...fakeStep) []attemptLog {
			f := &fakeAttempts{t0: time.Now(), steps: steps}
			c := Call{Config: mc, Budget: retry.NewBudget(retry.BudgetConfig{Disabled: true}), Attempt: f.attempt}
			require.NoError(t, Do(t.Context(), c, &wrapperspb.StringValue{}))
			return f.sorted()
		}
		assert.Equal(t, time.Second, mc.HedgingDelay())
		for range 64 {
			call(fakeStep{after: 4 * ms})
		}
		assert.Equal(t, 4*ms, mc.HedgingDelay())

		logs := call(fakeStep{after: time.Second}, fakeStep{after: ms})
		require.Len(t, logs, 2)
		assert.Equal(t, 4*ms, logs[1].start, "the hedge goes out at the 95th percentile")
	})
}

// A reply that is not a protobuf message is hedged too: each hedge writes
// into a new value of the type the reply points to, and the winner's
// value is copied into the caller's.
func TestHedgeReplyOfAnyPointerType(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type plain struct{ V string }
		res, err := retry.NewResolver(nil, []retry.Hedging{{Delay: 10 * ms}})
		require.NoError(t, err)
		reply := &plain{V: "stale"}
		var seen []any
		var mu sync.Mutex
		err = Do(t.Context(), Call{
			Config: res.Lookup("/svc/M"),
			Budget: retry.NewBudget(retry.BudgetConfig{}),
			Attempt: func(ctx context.Context, n int, r any, admit func() bool) error {
				if admit != nil && !admit() {
					return ErrNotSent
				}
				mu.Lock()
				seen = append(seen, r)
				mu.Unlock()
				if n == 1 {
					<-ctx.Done()
					return status.FromContextError(ctx.Err()).Err()
				}
				r.(*plain).V = fmt.Sprintf("attempt %d", n)
				return nil
			},
		}, reply)
		require.NoError(t, err)
		assert.Equal(t, "attempt 2", reply.V)
		require.Len(t, seen, 2)
		assert.Same(t, reply, seen[0], "attempt 1 writes into the caller's reply")
		assert.NotSame(t, reply, seen[1], "the hedge into a reply of its own")
	})
}

// End is told once which attempt ended the call: the winner, a fatal
// failure, the last non-fatal failure, or, when the caller's context
// ended the call, the last attempt to return that was sent.
func TestHedgeEnd(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "down")
	nonFatal := []codes.Code{codes.Unavailable}
	for _, tc := range []struct {
		name string
		r    *hedgeCase
		want []int
	}{
		{"attempt 1 answers", &hedgeCase{h: retry.Hedging{Delay: 10 * ms}, steps: []fakeStep{{after: 5 * ms}}}, []int{1}},
		{"a hedge wins", &hedgeCase{h: retry.Hedging{Delay: 10 * ms, MaxAttempts: 3},
			steps: []fakeStep{{after: 100 * ms}, {after: 100 * ms}, {after: 5 * ms}}}, []int{3}},
		{"a hedge fails fatally", &hedgeCase{h: retry.Hedging{Delay: 10 * ms, MaxAttempts: 3, NonFatalCodes: nonFatal},
			steps: []fakeStep{{after: 100 * ms}, {after: 2 * ms, err: status.Error(codes.Internal, "boom")}}}, []int{2}},
		{"every attempt fails non-fatally", &hedgeCase{h: retry.Hedging{Delay: 10 * ms, MaxAttempts: 2, NonFatalCodes: nonFatal},
			steps: []fakeStep{{after: 2 * ms, err: unavailable}, {after: 3 * ms, err: unavailable}}}, []int{2}},
		{"no hedge sent", &hedgeCase{h: retry.Hedging{Delay: 10 * ms, MaxAttempts: 3},
			steps: []fakeStep{{after: 50 * ms}}}, []int{1}},
		{"the context ends", &hedgeCase{h: retry.Hedging{Delay: 10 * ms, MaxAttempts: 2, NonFatalCodes: nonFatal},
			steps: []fakeStep{{after: 2 * ms, err: unavailable}, {after: time.Second}}, timeout: 25 * ms}, []int{2}},
		{"the context ends, no hedge sent", &hedgeCase{h: retry.Hedging{Delay: 10 * ms, MaxAttempts: 3},
			steps: []fakeStep{{after: time.Second}}, timeout: 25 * ms}, []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc.r.do(t)
				assert.Equal(t, tc.want, tc.r.ends, "err %v", tc.r.err)
			})
		})
	}

	// One attempt, without a budget: End is told of it.
	res, err := retry.NewResolver(nil, []retry.Hedging{{Delay: 10 * ms}})
	require.NoError(t, err)
	var ends []int
	f := &fakeAttempts{t0: time.Now(), steps: []fakeStep{{err: unavailable}}}
	err = Do(t.Context(), Call{Config: res.Lookup("/svc/M"), Attempt: f.attempt, End: func(n int) { ends = append(ends, n) }}, &wrapperspb.StringValue{})
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, []int{1}, ends)
}

// A configuration built without retry.Hedging.WithDefaults still makes
// at most retry.MaxHedgingAttempts attempts.
func TestHedgeAttemptsCappedWithoutDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		steps := make([]fakeStep, 8)
		for i := range steps {
			steps[i] = fakeStep{after: time.Second}
		}
		f := &fakeAttempts{t0: time.Now(), steps: steps, caller: &wrapperspb.StringValue{}}
		var ends []int
		call := Call{
			Config:  retry.MethodConfig{Hedging: &retry.Hedging{Delay: 10 * ms, MaxAttempts: len(steps)}},
			Budget:  retry.NewBudget(retry.BudgetConfig{Disabled: true}),
			Attempt: f.attempt,
			End:     func(n int) { ends = append(ends, n) },
		}
		require.NoError(t, Do(t.Context(), call, f.caller))
		assert.Len(t, f.sorted(), retry.MaxHedgingAttempts)
		assert.Equal(t, []int{1}, ends)
	})
}
