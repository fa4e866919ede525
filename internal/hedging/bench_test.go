package hedging

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/grpcpool/grpcpool/retry"
)

// BenchmarkHedgeOverhead is the cost the hedging engine adds to a call
// whose first attempt answers before the delay (no hedge sent), against
// calling the attempt directly, in the same run:
//
//	go test -run '^$' -bench HedgeOverhead -benchmem ./internal/hedging/
func BenchmarkHedgeOverhead(b *testing.B) {
	res, err := retry.NewResolver(nil, []retry.Hedging{{Delay: time.Second, Methods: []string{"/svc/"}}})
	if err != nil {
		b.Fatal(err)
	}
	attempt := func(ctx context.Context, n int, reply any, _ func() bool) error {
		reply.(*wrapperspb.StringValue).Value = "ok"
		return nil
	}
	reply := &wrapperspb.StringValue{}
	ctx := context.Background()
	b.Run("direct", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = attempt(ctx, 1, reply, nil)
		}
	})
	b.Run("hedged", func(b *testing.B) {
		call := Call{Config: res.Lookup("/svc/M"), Budget: retry.NewBudget(retry.BudgetConfig{}), Attempt: attempt}
		b.ReportAllocs()
		for b.Loop() {
			_ = Do(ctx, call, reply)
		}
	})
}
