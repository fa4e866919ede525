package retry_test

import (
	"fmt"

	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/retry"
)

// A service config's methodConfig, read as the pool's WithServiceConfig
// reads it, and what applies to a few methods.
func ExampleParseServiceConfig() {
	c, err := retry.ParseServiceConfig(`{"methodConfig": [
		{"name": [{}],
		 "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.025s", "maxBackoff": "1s",
		                 "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}},
		{"name": [{"service": "kv.Store", "method": "Get"}],
		 "hedgingPolicy": {"maxAttempts": 2, "hedgingDelay": "0.01s"}},
		{"name": [{"service": "kv.Store", "method": "Put"}]}
	]}`)
	if err != nil {
		panic(err)
	}
	r, err := retry.NewResolver(c.Retry, c.Hedging)
	if err != nil {
		panic(err)
	}
	for _, m := range []string{"/kv.Store/Get", "/kv.Store/Put", "/kv.Admin/Compact"} {
		mc := r.Lookup(m)
		switch {
		case mc.Hedging != nil:
			fmt.Printf("%s: hedged after %v, up to %d attempts\n", m, mc.HedgingDelay(), mc.Hedging.MaxAttempts)
		case mc.Retry != nil:
			fmt.Printf("%s: up to %d attempts\n", m, mc.Retry.MaxAttempts)
		}
	}

	_, err = retry.ParseServiceConfig(`{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 3, "initialBackoff": "1.5"}}]}`)
	fmt.Println(err)
	// Output:
	// /kv.Store/Get: hedged after 10ms, up to 2 attempts
	// /kv.Store/Put: up to 1 attempts
	// /kv.Admin/Compact: up to 3 attempts
	// retry: invalid policy: service config: duration "1.5": want seconds with an "s", such as "1.5s"
}

// Marking methods, and single calls, idempotent.
func ExampleIdempotent() {
	r, err := retry.NewResolver([]retry.Policy{
		{Idempotent: []string{"/kv.Store/Get", "/kv.Reader/"}},
	}, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Lookup("/kv.Store/Get").Idempotent)
	fmt.Println(r.Lookup("/kv.Store/Put").Idempotent)
	fmt.Println(r.ForCall("/kv.Store/Put", []grpc.CallOption{retry.Idempotent()}).Idempotent)
	fmt.Println(r.ForCall("/kv.Store/Get", []grpc.CallOption{retry.NotRetryable()}).Retry == nil)
	// Output:
	// true
	// false
	// true
	// true
}
