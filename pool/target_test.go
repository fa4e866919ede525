package pool_test

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

func TestTargetForms(t *testing.T) {
	// Not parallel: resolver.Register writes grpc's global resolver registry, which other tests read.
	bs := testutil.StartBackends(t, 1)
	addr := bs[0].Addr()
	_, port, _ := net.SplitHostPort(addr)

	sock := filepath.Join(t.TempDir(), "echo.sock")
	ul, err := net.Listen("unix", sock)
	require.NoError(t, err)
	us := backend.Start(ul, backend.Options{Name: "unix"})
	t.Cleanup(us.Stop)

	static := staticScheme{scheme: "staticreg", addrs: []string{addr}}
	resolver.Register(static)
	given := staticScheme{scheme: "given", addrs: []string{addr}}

	tests := []struct {
		target string
		opts   []pool.Option
	}{
		{addr, nil},
		{"localhost:" + port, nil},
		{"dns:///" + addr, nil},
		{"dns:///localhost:" + port, nil},
		{"passthrough:///" + addr, nil},
		{"unix://" + sock, nil},
		{"unix:" + sock, nil},
		{"staticreg:///svc.test", nil},
		{"given:///svc.test", []pool.Option{pool.WithResolvers(given)}},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			p := testutil.NewPool(t, tt.target, tt.opts...)
			ctx := testutil.Context(t)
			if err := p.WaitForReady(ctx); err != nil {
				require.Fail(t, fmt.Sprintf("WaitForReady: %v", err))
			}
			resp, err := echopb.NewEchoClient(p).Unary(ctx, &echopb.EchoRequest{Message: "x"})
			require.NoErrorf(t, err, "Unary: %v", err)
			require.EqualValuesf(t, "x", resp.Message, "got %q, want %q", resp.Message, "x")
		})
	}
}

// A dns target naming an IPv6 DNS server without a port
// asks that server on port 53: [::1]:53, never "[[::1]]:53".
//
// Nothing here answers DNS on [::1]:53, so the lookup fails; the test reads
// the dialed server's address from the resolver error the pool reports in
// its Unavailable message.
func TestDNSTargetWithIPv6ServerDialsPort53(t *testing.T) {
	t.Parallel()
	for _, target := range []string{"dns://[::1]/svc.test:50051", "dns://[::1]:53/svc.test:50051"} {
		t.Run(target, func(t *testing.T) {
			p := testutil.NewPool(t, target)
			_, err := echoUnary(testutil.ContextFor(t, 15*time.Second), echopb.NewEchoClient(p))
			msg := status.Convert(err).Message()
			require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
			require.NotContains(t, msg, "[[::1]]", "the DNS server's address was bracketed twice")
			require.Contains(t, msg, "[::1]:53", "the lookup must go to [::1]:53")
		})
	}
}
