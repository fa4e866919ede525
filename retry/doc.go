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
// Per method: a Policy with Methods applies to those methods, one without
// is the default; [Hedging] says which unary calls are hedged (sent to a
// second backend when the first is slow). [NewResolver] builds, once, the
// lookup from a method to what applies to it ([Resolver.Lookup],
// [Resolver.ForCall]: exact method, then service, then default), and
// [ParseServiceConfig] reads the same from a gRPC service config
// (methodConfig, gRFC A6). The call options [Idempotent] and
// [NotRetryable] mark one call; [FromCallOptions] reads them.
//
// Values here are plain data and pure functions, except the Budget and
// the latencies a Resolver keeps for adaptive hedging delays; nothing in
// this package starts a goroutine or a timer.
package retry
