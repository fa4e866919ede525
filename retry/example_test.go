package retry_test

import (
	"fmt"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/grpcpool/grpcpool/retry"
)

// The zero Policy means the documented defaults.
func ExamplePolicy_WithDefaults() {
	p := retry.Policy{}.WithDefaults()
	fmt.Println("attempts:", p.MaxAttempts)
	fmt.Println("backoff:", p.InitialBackoff, "growing x", p.Multiplier, "up to", p.MaxBackoff)
	fmt.Println("codes:", p.Codes)
	fmt.Println("budget:", p.Budget.Ratio, "of calls +", p.Budget.MinPerSecond, "per second, over", p.Budget.Window)
	// Output:
	// attempts: 3
	// backoff: 25ms growing x 2 up to 1s
	// codes: [Unavailable]
	// budget: 0.2 of calls + 10 per second, over 10s
}

// Common configurations.
func ExamplePolicy() {
	policies := map[string]retry.Policy{
		// Defaults: up to 2 retries on Unavailable, 20% budget.
		"default": {},
		// No retries at all.
		"off": {MaxAttempts: 1},
		// Also retry on overload and on aborted transactions, with a
		// slower backoff and a stricter budget.
		"patient": {
			MaxAttempts:    5,
			InitialBackoff: 100 * time.Millisecond,
			MaxBackoff:     5 * time.Second,
			Codes:          []codes.Code{codes.Unavailable, codes.ResourceExhausted, codes.Aborted},
			Budget:         retry.BudgetConfig{Ratio: 0.1, MinPerSecond: 2},
		},
	}
	for _, name := range []string{"default", "off", "patient"} {
		p := policies[name]
		if err := p.Validate(); err != nil {
			panic(err)
		}
		p = p.WithDefaults()
		fmt.Printf("%-7s retries=%d resource-exhausted=%v first-wait<=%v\n",
			name, p.MaxAttempts-1, p.Retryable(codes.ResourceExhausted), p.InitialBackoff)
	}
	// Output:
	// default retries=2 resource-exhausted=false first-wait<=25ms
	// off     retries=0 resource-exhausted=false first-wait<=25ms
	// patient retries=4 resource-exhausted=true first-wait<=100ms
}

// Validate reports bad input as errors wrapping ErrInvalidPolicy.
func ExamplePolicy_Validate() {
	err := retry.Policy{MaxAttempts: -1, InitialBackoff: -time.Second}.Validate()
	fmt.Println(err)
	// Output:
	// retry: invalid policy: MaxAttempts must not be negative, got -1
	// retry: invalid policy: InitialBackoff must not be negative, got -1s
}

// Backoff draws the wait before each retry uniformly from [0, bound]; the
// bound doubles from InitialBackoff up to MaxBackoff.
func ExamplePolicy_Backoff() {
	p := retry.Policy{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	bound := 100 * time.Millisecond
	for retryN := 1; retryN <= 5; retryN++ {
		wait := p.Backoff(retryN)
		fmt.Printf("retry %d: wait in [0, %v]: %v\n", retryN, bound, wait >= 0 && wait <= bound)
		bound = min(2*bound, time.Second)
	}
	// Output:
	// retry 1: wait in [0, 100ms]: true
	// retry 2: wait in [0, 200ms]: true
	// retry 3: wait in [0, 400ms]: true
	// retry 4: wait in [0, 800ms]: true
	// retry 5: wait in [0, 1s]: true
}

// One Budget is shared by all calls: each call deposits, each retry
// withdraws.
func ExampleBudget() {
	budget := retry.NewBudget(retry.BudgetConfig{}) // 20% of calls + 10/s over 10s

	retries := 0
	for budget.Withdraw() {
		retries++
	}
	fmt.Println("retries with no calls (the floor, 10/s × 10s):", retries)

	for range 1000 {
		budget.Deposit()
	}
	retries = 0
	for budget.Withdraw() {
		retries++
	}
	fmt.Println("retries after 1000 calls (20%):", retries)
	// Output:
	// retries with no calls (the floor, 10/s × 10s): 100
	// retries after 1000 calls (20%): 200
}
