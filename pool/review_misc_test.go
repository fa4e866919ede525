package pool_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"log/slog"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/retry"
)

// review item 13: when connections cannot be made, the Unavailable
// message carries the last connection error (as a grpc.ClientConn's
// "latest balancer error" does), counts backends and connections without
// mixing them, and the debug log records the error.
func TestConnectionFailureMessageCarriesTheCause(t *testing.T) {
	t.Parallel()
	const name = "svc.test"
	cert, roots := testutil.Cert(t, name)
	tlsSrv, err := backend.Listen(backend.Options{ServerOptions: []grpc.ServerOption{
		grpc.Creds(credentials.NewServerTLSFromCert(&cert)),
	}})
	require.NoError(t, err)
	t.Cleanup(tlsSrv.Stop)
	tlsCreds := grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots}))

	for _, tc := range []struct {
		name, addr string
		creds      grpc.DialOption
		want       string // in what a plain grpc.ClientConn says
	}{
		// Dialed by IP: the certificate names svc.test only.
		{"TLS name mismatch", tlsSrv.Addr(), tlsCreds, "x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs"},
		{"insecure against a TLS server", tlsSrv.Addr(), testutil.Insecure, "server preface"},
		{"refused port", testutil.DeadAddr(t), testutil.Insecure, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// What a plain ClientConn says, for reference.
			cc, err := grpc.NewClient("passthrough:///"+tc.addr, tc.creds)
			require.NoError(t, err)
			defer cc.Close()
			_, err = rvUnary(testutil.ContextFor(t, 10*time.Second), echopb.NewEchoClient(cc))
			require.Contains(t, status.Convert(err).Message(), tc.want, "grpc.ClientConn's message")

			logs := testutil.NewLogRecorder()
			p, err := pool.New("passthrough:///"+tc.addr, pool.WithDialOptions(tc.creds), pool.WithLogger(slog.New(logs)))
			require.NoError(t, err)
			defer p.Close()
			_, err = rvUnary(testutil.ContextFor(t, 10*time.Second), echopb.NewEchoClient(p))
			require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
			msg := status.Convert(err).Message()
			require.Contains(t, msg, tc.want, "the pool's Unavailable message must carry the connection error")
			require.NotContains(t, msg, "1 backends", "counts must name backends and connections correctly")
			require.Contains(t, logs.Text(), tc.want, "the pool's log must record the connection error")
		})
	}
}

// review item 14: a dns target naming an IPv6 DNS server without a port
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
			_, err := rvUnary(testutil.ContextFor(t, 15*time.Second), echopb.NewEchoClient(p))
			msg := status.Convert(err).Message()
			require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
			require.NotContains(t, msg, "[[::1]]", "the DNS server's address was bracketed twice")
			require.Contains(t, msg, "[::1]:53", "the lookup must go to [::1]:53")
		})
	}
}

// review item 15: a caller's grpc.OnFinish runs once per call, as gRPC
// documents it, also when WithRetry made a second attempt.
func TestOnFinishRunsOncePerRetriedCall(t *testing.T) {
	t.Parallel()
	p, n := sheddingPool(t)
	c := echopb.NewEchoClient(p)
	const calls = 5
	var finished atomic.Int64
	for i := range calls {
		_, err := rvUnary(testutil.ContextFor(t, 5*time.Second), c, grpc.OnFinish(func(error) { finished.Add(1) }))
		require.NoError(t, err, "call %d", i)
	}
	require.EqualValues(t, 2*calls, n.Load(), "attempts the server saw")
	require.EqualValues(t, calls, finished.Load(), "grpc.OnFinish runs of %d calls", calls)
}

// review item 16: a backend the pool could make no connection to (here
// its address is one grpc.NewClient rejects) gets a message that says so,
// not one that ends in a colon with nothing after it.
func TestNoConnectionMessageIsNotEmpty(t *testing.T) {
	t.Parallel()
	r, target := testutil.ManualTarget("127.0.0.1:1\x7f")
	p := testutil.NewPool(t, target, pool.WithResolvers(r))
	_, err := rvUnary(testutil.ContextFor(t, 10*time.Second), echopb.NewEchoClient(p))
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	msg := strings.TrimSpace(status.Convert(err).Message())
	require.False(t, strings.HasSuffix(msg, ":"), "the message says nothing after its colon: %q", msg)
}

// review item 18: the idle shrink counts only connections that can serve:
// of [READY idle, READY idle, failing] above a floor of 2 it must keep both
// READY ones.
func TestIdleShrinkDoesNotCountFailingConnections(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 1)
	var d rvDialer
	p, _ := testutil.ReadyPool(t, bs, pool.WithSize(2), pool.WithMaxStreamsPerConn(1),
		pool.WithIdleTimeout(50*time.Millisecond), d.option())
	c := echopb.NewEchoClient(p)
	ctx := testutil.ContextFor(t, 10*time.Second)
	first, release := context.WithCancel(ctx)
	defer release()
	testutil.OpenBidi(t, first, c, 2) // both connections at their cap...
	testutil.OpenBidi(t, ctx, c, 1)   // ...so this one grows a third
	for b := rvOnly(t, p); b.Ready < 3; b = rvOnly(t, p) {
		require.NoError(t, ctx.Err(), "three ready connections: %+v", b.Conns)
		time.Sleep(5 * time.Millisecond)
	}
	release() // the first two go idle; the third loses its transport and cannot reconnect
	d.fail.Store(true)
	require.NotNil(t, d.conn(2), "the third connection's transport")
	require.NoError(t, d.conn(2).Close())
	for b := rvOnly(t, p); b.Ready > 2; b = rvOnly(t, p) {
		require.NoError(t, ctx.Err(), "the third connection failing: %+v", b.Conns)
		time.Sleep(5 * time.Millisecond)
	}
	testutil.Hold(t, 500*time.Millisecond, func() error {
		if b := rvOnly(t, p); b.Ready < 2 {
			return fmt.Errorf("the idle shrink left %d READY connections next to a failing one, below WithSize(2): %+v", b.Ready, b.Conns)
		}
		return nil
	})
}

// Stats counts logical calls and attempts apart: five calls whose first
// attempt the server sheds and whose retry succeeds are five calls and ten
// attempts.
func TestStatsCountsCallsAndAttemptsApart(t *testing.T) {
	t.Parallel()
	p, _ := sheddingPool(t)
	c := echopb.NewEchoClient(p)
	for i := range 5 {
		_, err := rvUnary(testutil.ContextFor(t, 5*time.Second), c)
		require.NoError(t, err, "call %d", i)
	}
	b := rvOnly(t, p)
	require.EqualValues(t, 5, b.Calls, "logical calls")
	require.EqualValues(t, 10, b.Attempts, "attempts")
	require.Contains(t, p.Stats().String(), b.Addr)
}

// sheddingPool returns a pool with retries over one backend that sheds
// every other request with its own Unavailable: each call's first attempt
// fails and its retry succeeds. n counts the requests the backend saw.
func sheddingPool(t *testing.T) (p *pool.Pool, n *atomic.Int64) {
	t.Helper()
	n = new(atomic.Int64)
	flaky := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if n.Add(1)%2 == 1 {
			return nil, status.Error(codes.Unavailable, "shedding load")
		}
		return h(ctx, req)
	}
	s, err := backend.Listen(backend.Options{ServerOptions: []grpc.ServerOption{grpc.UnaryInterceptor(flaky)}})
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	p, _ = testutil.ReadyPool(t, []*backend.Server{s}, pool.WithSize(1),
		pool.WithRetry(retry.Policy{MaxAttempts: 2, Budget: retry.BudgetConfig{Disabled: true}}))
	return p, n
}
