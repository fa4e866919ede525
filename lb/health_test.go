package lb

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/internal/testutil"
)

// withHealth adds grpc's healthCheckConfig to the policy's service config.
func withHealth(c Config) string {
	sc := ServiceConfig(c)
	return strings.TrimSuffix(sc, "}") + `,"healthCheckConfig":{"serviceName":""}}`
}

// TestHealthCheckConfigTakesANotServingBackendOut: with grpc's own
// healthCheckConfig in the service config, a backend whose health service
// reports NOT_SERVING takes no calls until it reports SERVING again; with
// all of them not serving, calls fail at once and say so.
func TestHealthCheckConfigTakesANotServingBackendOut(t *testing.T) {
	ss := startServers(t, 2)
	cc, _ := dial(t, ss, withHealth(Config{Size: 2}))
	waitConns(t, ss, 2)
	mustCall(t, cc, 10)

	ss[0].Health().SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	testutil.WaitFor(t, "calls to avoid the backend not serving", func() bool {
		before := ss[0].Unary()
		mustCall(t, cc, 10)
		return ss[0].Unary() == before
	})
	before := ss[0].Unary()
	mustCall(t, cc, 50)
	if got := ss[0].Unary() - before; got != 0 {
		t.Fatalf("backend not serving got %d of 50 calls, want 0", got)
	}

	ss[1].Health().SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	var err error
	testutil.WaitFor(t, "calls to fail with none serving", func() bool {
		_, err = call(cc)
		return err != nil
	})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "2 backends not serving (health check)") {
		t.Fatalf("with no backend serving: %v, want Unavailable naming 2 backends not serving (health check)", err)
	}

	ss[0].Health().SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	testutil.WaitFor(t, "calls to reach the backend serving again", func() bool {
		_, err := call(cc)
		return err == nil && ss[0].Unary() > before
	})
}

// TestWithoutHealthCheckConfigHealthIsNotWatched: without a
// healthCheckConfig, grpc reports every READY SubConn as serving: a
// backend's NOT_SERVING changes nothing.
func TestWithoutHealthCheckConfigHealthIsNotWatched(t *testing.T) {
	ss := startServers(t, 2)
	ss[0].Health().SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	cc, _ := dial(t, ss, ServiceConfig(Config{Size: 1}))
	waitConns(t, ss, 1)
	waitAllCalled(t, cc, ss) // the NOT_SERVING one too, or the test times out
}
