package retry_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/grpcpool/grpcpool/retry"
)

const validRetry = `"retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.1s", "maxBackoff": "1.5s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE", 8]}`

func TestParseServiceConfig(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		want    *retry.Config
		wantErr string // a part of the error; "" for none
	}{
		{"empty", `{}`, &retry.Config{}, ""},
		{"null", `null`, nil, "not a JSON object"},
		{"nothing", ` `, nil, "not a JSON object"},
		{"retry for a method", `{"methodConfig": [{"name": [{"service": "pkg.Svc", "method": "Get"}], ` + validRetry + `}]}`,
			&retry.Config{Retry: []retry.Policy{{
				MaxAttempts: 3, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 1500 * time.Millisecond, Multiplier: 2,
				Codes: []codes.Code{codes.Unavailable, codes.ResourceExhausted}, Methods: []string{"/pkg.Svc/Get"},
			}}}, ""},
		{"service and default names", `{"methodConfig": [
			{"name": [{"service": "pkg.Svc"}, {"service": "pkg.Other", "method": "M"}], ` + validRetry + `},
			{"name": [{}]}]}`,
			&retry.Config{Retry: []retry.Policy{{
				MaxAttempts: 3, InitialBackoff: 100 * time.Millisecond, MaxBackoff: 1500 * time.Millisecond, Multiplier: 2,
				Codes: []codes.Code{codes.Unavailable, codes.ResourceExhausted}, Methods: []string{"/pkg.Svc/", "/pkg.Other/M"},
			}, {MaxAttempts: 1}}}, ""},
		{"maxAttempts above 5 is 5", `{"methodConfig": [{"name": [{"service": "s"}], "retryPolicy": {"maxAttempts": 9, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 1, "retryableStatusCodes": ["ABORTED"]}}]}`,
			&retry.Config{Retry: []retry.Policy{{MaxAttempts: 5, InitialBackoff: time.Second, MaxBackoff: time.Second, Multiplier: 1,
				Codes: []codes.Code{codes.Aborted}, Methods: []string{"/s/"}}}}, ""},
		{"hedging", `{"methodConfig": [{"name": [{"service": "pkg.Svc", "method": "Search"}], "hedgingPolicy": {"maxAttempts": 3, "hedgingDelay": "0.050s", "nonFatalStatusCodes": ["UNAVAILABLE"]}}]}`,
			&retry.Config{Hedging: []retry.Hedging{{MaxAttempts: 3, Delay: 50 * time.Millisecond,
				NonFatalCodes: []codes.Code{codes.Unavailable}, Methods: []string{"/pkg.Svc/Search"}}}}, ""},
		{"hedging without delay sends at once", `{"methodConfig": [{"name": [{"service": "s"}], "hedgingPolicy": {"maxAttempts": 2}}]}`,
			&retry.Config{Hedging: []retry.Hedging{{MaxAttempts: 2, Delay: time.Nanosecond, Methods: []string{"/s/"}}}}, ""},
		{"hedging delay 0s sends at once", `{"methodConfig": [{"name": [{"service": "s"}], "hedgingPolicy": {"maxAttempts": 2, "hedgingDelay": "0s"}}]}`,
			&retry.Config{Hedging: []retry.Hedging{{MaxAttempts: 2, Delay: time.Nanosecond, Methods: []string{"/s/"}}}}, ""},

		{"not JSON", `{"methodConfig": [`, nil, "unexpected EOF"},
		{"trailing data", `{} {}`, nil, "data after"},
		{"unknown top-level field", `{"methodConfg": []}`, nil, `unknown field "methodConfg"`},
		{"unknown methodConfig field", `{"methodConfig": [{"name": [{}], "retryPolcy": {}}]}`, nil, `unknown field "retryPolcy"`},
		{"unknown retryPolicy field", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "perAttemptRecvTimeout": "1s"}}]}`, nil, `unknown field "perAttemptRecvTimeout"`},
		{"duration without s", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": "1.5", "maxBackoff": "2s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`, nil, `duration "1.5"`},
		{"duration as a number", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": 1.5, "maxBackoff": "2s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`, nil, "want a string"},
		{"duration in ms", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": "100ms", "maxBackoff": "2s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`, nil, `duration "100ms"`},
		{"maxAttempts 1", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 1, "initialBackoff": "1s", "maxBackoff": "2s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`, nil, "maxAttempts: must be at least 2"},
		{"maxAttempts fractional", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2.5}}]}`, nil, "maxAttempts"},
		{"missing fields", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2}}]}`, nil, "initialBackoff: required"},
		{"no codes", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "2s", "backoffMultiplier": 2, "retryableStatusCodes": []}}]}`, nil, "retryableStatusCodes: required"},
		{"unknown code", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "2s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLEE"]}}]}`, nil, "UNAVAILABLEE"},
		{"code OK", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "2s", "backoffMultiplier": 2, "retryableStatusCodes": ["OK"]}}]}`, nil, "cannot be retried"},
		{"zero backoff", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": "0s", "maxBackoff": "2s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`, nil, "initialBackoff: must be positive"},
		{"maxBackoff below initial", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": "3s", "maxBackoff": "2s", "backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`, nil, "smaller than InitialBackoff"},
		{"shrinking multiplier", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": "1s", "maxBackoff": "2s", "backoffMultiplier": 0.5, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`, nil, "backoffMultiplier: must be at least 1"},
		{"both policies", `{"methodConfig": [{"name": [{"service": "s"}], ` + validRetry + `, "hedgingPolicy": {"maxAttempts": 2}}]}`, nil, "both retryPolicy and hedgingPolicy"},
		{"hedging maxAttempts 1", `{"methodConfig": [{"name": [{"service": "s"}], "hedgingPolicy": {"maxAttempts": 1}}]}`, nil, "maxAttempts: must be at least 2"},
		{"hedging without maxAttempts", `{"methodConfig": [{"name": [{"service": "s"}], "hedgingPolicy": {"hedgingDelay": "1s"}}]}`, nil, "maxAttempts: required"},
		{"hedging negative delay", `{"methodConfig": [{"name": [{"service": "s"}], "hedgingPolicy": {"maxAttempts": 2, "hedgingDelay": "-1s"}}]}`, nil, "must not be negative"},
		{"name twice", `{"methodConfig": [{"name": [{"service": "s", "method": "M"}]}, {"name": [{"service": "s", "method": "M"}], ` + validRetry + `}]}`, nil, `"/s/M" is configured twice`},
		{"two defaults", `{"methodConfig": [{"name": [{}]}, {"name": [{"service": ""}]}]}`, nil, "the default (no Methods) is configured twice"},
		{"no name", `{"methodConfig": [{` + validRetry + `}]}`, nil, "name: missing"},
		{"method without service", `{"methodConfig": [{"name": [{"method": "M"}]}]}`, nil, "without a service"},
		{"slash in service", `{"methodConfig": [{"name": [{"service": "a/b"}]}]}`, nil, "is not a method name"},
		{"timeout", `{"methodConfig": [{"name": [{}], "timeout": "1s"}]}`, nil, "timeout is not applied"},
		{"retryThrottling", `{"retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1}}`, nil, "retryThrottling is not applied"},
		{"loadBalancingConfig", `{"loadBalancingConfig": [{"round_robin": {}}]}`, nil, "loadBalancingConfig is not applied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := retry.ParseServiceConfig(tt.json)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, retry.ErrInvalidPolicy)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// A parsed config gives the methods what gRPC would: the most specific
// entry, and an entry without a policy turns the default's retries off.
func TestParseServiceConfigResolves(t *testing.T) {
	c, err := retry.ParseServiceConfig(`{"methodConfig": [
		{"name": [{}], ` + validRetry + `},
		{"name": [{"service": "pkg.Svc", "method": "Create"}]},
		{"name": [{"service": "pkg.Svc", "method": "Search"}], "hedgingPolicy": {"maxAttempts": 2, "hedgingDelay": "0.02s"}}]}`)
	require.NoError(t, err)
	r, err := retry.NewResolver(c.Retry, c.Hedging)
	require.NoError(t, err)

	get := r.Lookup("/pkg.Svc/Get")
	require.NotNil(t, get.Retry)
	assert.Equal(t, 3, get.Retry.MaxAttempts)
	assert.Nil(t, get.Hedging)

	create := r.Lookup("/pkg.Svc/Create")
	require.NotNil(t, create.Retry)
	assert.Equal(t, 1, create.Retry.MaxAttempts, "an entry without a policy turns retries off")

	search := r.Lookup("/pkg.Svc/Search")
	assert.Nil(t, search.Retry)
	require.NotNil(t, search.Hedging)
	assert.Equal(t, 20*time.Millisecond, search.HedgingDelay())
	assert.True(t, search.Idempotent)
}
