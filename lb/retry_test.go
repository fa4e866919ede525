package lb

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

// TestGRPCRetryPolicyWorksBesideThePolicy: grpc's own retryPolicy, in the
// same service config, retries a failed attempt; each attempt is a pick of
// its own, so with one backend failing every call still succeeds.
func TestGRPCRetryPolicyWorksBesideThePolicy(t *testing.T) {
	ss := startServers(t, 2)
	ss[0].SetFail(codes.Unavailable)
	sc := strings.TrimSuffix(ServiceConfig(Config{Size: 1}), "}") + `,"methodConfig":[{
		"name":[{"service":"grpcpool.example.echo.v1.Echo"}],
		"retryPolicy":{"maxAttempts":4,"initialBackoff":"0.001s","maxBackoff":"0.01s","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}}]}`
	cc, _ := dial(t, ss, sc)
	waitConns(t, ss, 1)
	waitAllCalled(t, cc, ss)
	failing, healthy := ss[0].Unary(), ss[1].Unary()
	mustCall(t, cc, 40)
	if ss[0].Unary() == failing {
		t.Fatal("the failing backend got no attempt: nothing was retried")
	}
	if got := ss[1].Unary() - healthy; got != 40 {
		t.Errorf("the healthy backend answered %d calls, want all 40", got)
	}
}
