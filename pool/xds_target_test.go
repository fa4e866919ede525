package pool_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver/manual"

	"github.com/grpcpool/grpcpool/pool"
)

// TestXDSTargetPointsToTheLBDoor: grpc's xDS resolver reports no
// addresses (xDS resolves endpoints inside its own balancers), so a pool
// would have none to connect to. pool.New refuses xds:/// targets (and
// google-c2p:///, which resolves through xDS) with an error that names
// the load-balancing policy in package lb, whether or not an xDS resolver
// is registered.
func TestXDSTargetPointsToTheLBDoor(t *testing.T) {
	for _, tc := range []struct {
		target string
		opts   []pool.Option
	}{
		{"xds:///greeter.prod.svc:50051", nil},
		{"xds://trafficdirector.googleapis.com/greeter", nil},
		{"google-c2p:///spanner.googleapis.com", nil},
		{"xds:///greeter", []pool.Option{pool.WithResolvers(manual.NewBuilderWithScheme("xds"))}},
	} {
		opts := append([]pool.Option{pool.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials()))}, tc.opts...)
		p, err := pool.New(tc.target, opts...)
		if err == nil {
			_ = p.Close()
			assert.Fail(t, fmt.Sprintf("pool.New(%q): no error, want one pointing to package lb", tc.target))
			continue
		}
		assert.Truef(t, errors.Is(err, pool.ErrInvalidTarget), "pool.New(%q): %v, want it to wrap ErrInvalidTarget", tc.target, err)
		for _, want := range []string{tc.target, "github.com/grpcpool/grpcpool/lb", `"grpcpool"`} {
			assert.Truef(t, strings.Contains(err.Error(), want), "pool.New(%q): %q, want it to mention %s", tc.target, err, want)
		}
	}
}
