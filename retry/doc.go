// Package retry holds the retry policy of grpcpool: which gRPC codes are
// retried and how often ([Policy]), how long to wait between attempts
// ([Policy.Backoff], exponential with full jitter), and a retry budget
// shared by all calls of a pool ([Budget]) so that a failing fleet is not
// hit by a retry storm.
//
// The pool uses them this way for each call:
//
//	p := policy.WithDefaults()          // once
//	budget := retry.NewBudget(p.Budget) // once per pool
//
//	budget.Deposit()
//	for attempt := 1; ; attempt++ {
//		err := invoke(ctx) // on a backend not tried yet, if there is one
//		if err == nil || attempt >= p.MaxAttempts || !p.Retryable(status.Code(err)) {
//			return err
//		}
//		wait := p.Backoff(attempt)
//		if !deadlineAllows(ctx, wait) || !budget.Withdraw() {
//			return err
//		}
//		sleep(ctx, wait)
//	}
//
// Values here are plain data and pure functions; nothing in this package
// starts a goroutine or a timer.
package retry
