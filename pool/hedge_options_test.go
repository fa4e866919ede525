package pool_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/retry"
)

func TestMethodPolicyOptions(t *testing.T) {
	t.Parallel()
	const sc = `{"methodConfig": [{"name": [{"service": "pkg.Svc", "method": "Search"}], "hedgingPolicy": {"maxAttempts": 2, "hedgingDelay": "0.01s"}}]}`
	tests := []struct {
		name    string
		opts    []pool.Option
		wantErr string // "" for none
	}{
		{"one default retry", []pool.Option{pool.WithRetry(retry.Policy{})}, ""},
		{"retry per method and a default", []pool.Option{
			pool.WithRetry(retry.Policy{}),
			pool.WithRetry(retry.Policy{MaxAttempts: 5, Methods: []string{"/pkg.Svc/Get"}}),
			pool.WithHedging(retry.Hedging{Delay: 10 * time.Millisecond, Methods: []string{"/pkg.Svc/Search"}}),
		}, ""},
		{"service config with a default retry", []pool.Option{pool.WithServiceConfig(sc), pool.WithRetry(retry.Policy{Idempotent: []string{"/pkg.Svc/Get"}})}, ""},
		{"hedging alone", []pool.Option{pool.WithHedging(retry.Hedging{Methods: []string{"/pkg.Svc/"}})}, ""},

		{"two default retries", []pool.Option{pool.WithRetry(retry.Policy{}), pool.WithRetry(retry.Policy{MaxAttempts: 2})}, "the default (no Methods) is configured twice"},
		{"a method retried and hedged", []pool.Option{
			pool.WithRetry(retry.Policy{Methods: []string{"/pkg.Svc/Search"}}),
			pool.WithHedging(retry.Hedging{Methods: []string{"/pkg.Svc/Search"}}),
		}, `"/pkg.Svc/Search" is configured twice`},
		{"service config and an option for the same method", []pool.Option{
			pool.WithServiceConfig(sc),
			pool.WithHedging(retry.Hedging{Methods: []string{"/pkg.Svc/Search"}}),
		}, "configured twice"},
		{"bad hedging", []pool.Option{pool.WithHedging(retry.Hedging{MaxAttempts: 1})}, "WithHedging"},
		{"bad service config", []pool.Option{pool.WithServiceConfig(`{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": "1.5"}}]}`)}, `WithServiceConfig: retry: invalid policy: service config: duration "1.5"`},
		{"service config with an unknown field", []pool.Option{pool.WithServiceConfig(`{"methodConfig": [{"name": [{}], "hedgingPolicy": {"maxAttempts": 2, "delay": "1s"}}]}`)}, `unknown field "delay"`},
		{"budget on a method policy", []pool.Option{pool.WithRetry(retry.Policy{Methods: []string{"/a/"}, Budget: retry.BudgetConfig{Ratio: 0.5}})}, "only on the default policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := pool.New("127.0.0.1:1", append([]pool.Option{pool.WithDialOptions(testutil.Insecure)}, tt.opts...)...)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.NoError(t, p.Close())
				return
			}
			require.Error(t, err)
			assert.Nil(t, p)
			assert.ErrorIs(t, err, pool.ErrInvalidOption)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}
