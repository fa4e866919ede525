package pool_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/keepalive"
	"github.com/grpcpool/grpcpool/pool"
	"github.com/grpcpool/grpcpool/retry"
)

type nilMembership struct{}

func (*nilMembership) Watch(context.Context, func(index, count int)) error { return nil }

func TestNewRejectsBadInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		target string
		opts   []pool.Option
		want   error
	}{
		{"empty target", "", nil, pool.ErrInvalidTarget},
		{"blank target", "  ", nil, pool.ErrInvalidTarget},
		{"unknown scheme", "nosuchscheme:///x:1", nil, pool.ErrUnknownScheme},
		{"dns without host", "dns:///", nil, pool.ErrInvalidTarget},
		{"size 0", "127.0.0.1:1", []pool.Option{pool.WithSize(0)}, pool.ErrInvalidOption},
		{"size negative", "127.0.0.1:1", []pool.Option{pool.WithSize(-3)}, pool.ErrInvalidOption},
		{"max size below size", "127.0.0.1:1", []pool.Option{pool.WithSize(4), pool.WithMaxSize(2)}, pool.ErrInvalidOption},
		{"size above the maximum", "127.0.0.1:1", []pool.Option{pool.WithSize(math.MaxInt32)}, pool.ErrInvalidOption},
		{"size that overflows the default maximum", "127.0.0.1:1", []pool.Option{pool.WithSize(math.MaxInt)}, pool.ErrInvalidOption},
		{"max size above the maximum", "127.0.0.1:1", []pool.Option{pool.WithMaxSize(pool.MaxConnsPerBackend + 1)}, pool.ErrInvalidOption},
		{"typed nil meter provider", "127.0.0.1:1", []pool.Option{pool.WithMeterProvider((*sdkmetric.MeterProvider)(nil))}, pool.ErrInvalidOption},
		{"logger without a handler", "127.0.0.1:1", []pool.Option{pool.WithLogger(&slog.Logger{})}, pool.ErrInvalidOption},
		{"typed nil resolver", "127.0.0.1:1", []pool.Option{pool.WithResolvers((*manual.Resolver)(nil))}, pool.ErrInvalidOption},
		{"typed nil membership", "127.0.0.1:1", []pool.Option{pool.WithSubset(1, (*nilMembership)(nil))}, pool.ErrInvalidOption},
		{"bad escape", "dns:///%zz", nil, pool.ErrInvalidTarget},
		{"nil option", "127.0.0.1:1", []pool.Option{nil}, pool.ErrInvalidOption},
		{"unknown policy", "127.0.0.1:1", []pool.Option{pool.WithPolicy(pool.Policy(42))}, pool.ErrInvalidOption},
		{"negative resolve interval", "127.0.0.1:1", []pool.Option{pool.WithResolveInterval(-time.Second)}, pool.ErrInvalidOption},
		{"negative max conn age", "127.0.0.1:1", []pool.Option{pool.WithMaxConnAge(-1)}, pool.ErrInvalidOption},
		{"negative drain timeout", "127.0.0.1:1", []pool.Option{pool.WithDrainTimeout(-1)}, pool.ErrInvalidOption},
		{"negative max stream age", "127.0.0.1:1", []pool.Option{pool.WithMaxStreamAge(-1)}, pool.ErrInvalidOption},
		{"negative idle timeout", "127.0.0.1:1", []pool.Option{pool.WithIdleTimeout(-1)}, pool.ErrInvalidOption},
		{"negative stream stall timeout", "127.0.0.1:1", []pool.Option{pool.WithStreamStallTimeout(-1)}, pool.ErrInvalidOption},
		{"negative max streams", "127.0.0.1:1", []pool.Option{pool.WithMaxStreamsPerConn(-1)}, pool.ErrInvalidOption},
		{"nil logger", "127.0.0.1:1", []pool.Option{pool.WithLogger(nil)}, pool.ErrInvalidOption},
		{"nil dial option", "127.0.0.1:1", []pool.Option{pool.WithDialOptions(nil)}, pool.ErrInvalidOption},
		{"nil resolver", "127.0.0.1:1", []pool.Option{pool.WithResolvers(nil)}, pool.ErrInvalidOption},
		{"empty hash key", "127.0.0.1:1", []pool.Option{pool.WithHashKey("")}, pool.ErrInvalidOption},
		{"nil hash key func", "127.0.0.1:1", []pool.Option{pool.WithHashKeyFunc(nil)}, pool.ErrInvalidOption},
		{"bad breaker", "127.0.0.1:1", []pool.Option{pool.WithBreaker(breaker.Settings{OpenTimeout: -1})}, pool.ErrInvalidOption},
		{"bad retry", "127.0.0.1:1", []pool.Option{pool.WithRetry(retry.Policy{MaxAttempts: -1})}, pool.ErrInvalidOption},
		{"bad keepalive", "127.0.0.1:1", []pool.Option{pool.WithKeepalive(keepalive.Config{Time: -1})}, pool.ErrInvalidOption},
		{"no transport security", "127.0.0.1:1", []pool.Option{}, pool.ErrInvalidOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := tt.opts
			if tt.name != "no transport security" {
				opts = append([]pool.Option{pool.WithDialOptions(testutil.Insecure)}, opts...)
			}
			p, err := pool.New(tt.target, opts...)
			if err == nil {
				_ = p.Close()
				require.Fail(t, fmt.Sprintf("New(%q) = nil error, want %v", tt.target, tt.want))
			}
			require.Truef(t, errors.Is(err, tt.want), "New(%q) = %v, want errors.Is %v", tt.target, err, tt.want)
		})
	}
}

// staticScheme is a resolver that always reports the same addresses.
type staticScheme struct {
	scheme string
	addrs  []string
}

func (s staticScheme) Scheme() string { return s.scheme }

func (s staticScheme) Build(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) (resolver.Resolver, error) {
	_ = cc.UpdateState(resolver.State{Addresses: testutil.Addrs(s.addrs...)})
	return s, nil
}

func (staticScheme) ResolveNow(resolver.ResolveNowOptions) {}
func (staticScheme) Close()                                {}

// tlsBackend starts an Echo server with a certificate for name only, and
// records the :authority of each call.
func tlsBackend(t *testing.T, name string) (*backend.Server, <-chan string) {
	t.Helper()
	cert, _ := testutil.Cert(t, name)
	auths := make(chan string, 16)
	rec := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		if a := md.Get(":authority"); len(a) > 0 {
			select {
			case auths <- a[0]:
			default:
			}
		}
		return h(ctx, req)
	}
	s, err := backend.Listen(backend.Options{Name: "tls", ServerOptions: []grpc.ServerOption{
		grpc.Creds(credentials.NewServerTLSFromCert(&cert)),
		grpc.UnaryInterceptor(rec),
	}})
	require.NoError(t, err)
	t.Cleanup(s.Stop)
	return s, auths
}

func TestTLSVerifiesTargetHostNotDialedIP(t *testing.T) {
	t.Parallel()
	const name = "svc.test"
	s, auths := tlsBackend(t, name)
	cert, roots := testutil.Cert(t, name)
	_ = cert
	// The server's certificate is from another key pair; trust the right one.
	srvRoots := x509.NewCertPool()
	srvRoots.AddCert(mustLeaf(t, s))
	_ = roots

	r, _ := testutil.ManualTarget(s.Addr())
	target := r.Scheme() + ":///" + name + ":443"
	creds := credentials.NewTLS(&tls.Config{RootCAs: srvRoots})
	p, err := pool.New(target, pool.WithResolvers(r), pool.WithDialOptions(grpc.WithTransportCredentials(creds)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	ctx := testutil.Context(t)
	if _, err := echopb.NewEchoClient(p).Unary(ctx, &echopb.EchoRequest{Message: "x"}, grpc.WaitForReady(true)); err != nil {
		require.Fail(t, fmt.Sprintf("Unary over TLS dialing %s for %s: %v", s.Addr(), name, err))
	}
	got, want := <-auths, name+":443"
	require.EqualValuesf(t, want, got, ":authority = %q, want %q", got, want)

	// The same server reached by IP: verification against the IP must fail,
	// which shows the first call was checked against the name.
	ipTarget := "passthrough:///" + s.Addr()
	p2, err := pool.New(ipTarget, pool.WithDialOptions(grpc.WithTransportCredentials(creds)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p2.Close() })
	ctx2, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = echopb.NewEchoClient(p2).Unary(ctx2, &echopb.EchoRequest{Message: "x"})
	code := status.Code(err)
	require.Falsef(t, code != codes.Unavailable && code != codes.DeadlineExceeded, "Unary by IP = %v, want a TLS failure (Unavailable)", err)
}

// TestAddressServerNameKept shows resolver address attributes reach the
// connection: the address's ServerName overrides the target's host for TLS.
func TestAddressServerNameKept(t *testing.T) {
	t.Parallel()
	s, _ := tlsBackend(t, "real.test")
	roots := x509.NewCertPool()
	roots.AddCert(mustLeaf(t, s))
	r, _ := testutil.ManualTarget()
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: s.Addr(), ServerName: "real.test"}}})
	creds := credentials.NewTLS(&tls.Config{RootCAs: roots})
	p, err := pool.New(r.Scheme()+":///other.test:443", pool.WithResolvers(r), pool.WithDialOptions(grpc.WithTransportCredentials(creds)))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	if _, err := echopb.NewEchoClient(p).Unary(testutil.Context(t), &echopb.EchoRequest{}, grpc.WaitForReady(true)); err != nil {
		require.Fail(t, fmt.Sprintf("Unary with ServerName attribute: %v", err))
	}
}

// mustLeaf fetches the certificate a TLS backend presents.
func mustLeaf(t *testing.T, s *backend.Server) *x509.Certificate {
	t.Helper()
	c, err := tls.Dial("tcp", s.Addr(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	require.NoError(t, err)
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

func TestCloseIsIdempotentAndCallsFailCanceled(t *testing.T) {
	t.Parallel()
	bs := testutil.StartBackends(t, 2)
	p, _ := testutil.ReadyPool(t, bs)
	client := echopb.NewEchoClient(p)
	ctx := testutil.Context(t)
	if _, err := client.Unary(ctx, &echopb.EchoRequest{}); err != nil {
		require.Fail(t, fmt.Sprint(err))
	}
	if err := p.Close(); err != nil {
		require.Fail(t, fmt.Sprintf("Close: %v", err))
	}
	if err := p.Close(); err != nil {
		require.Fail(t, fmt.Sprintf("second Close: %v", err))
	}
	if _, err := client.Unary(ctx, &echopb.EchoRequest{}); status.Code(err) != codes.Canceled {
		require.Fail(t, fmt.Sprintf("Unary after Close = %v, want Canceled", err))
	}
	if _, err := client.Bidi(ctx); status.Code(err) != codes.Canceled {
		require.Fail(t, fmt.Sprintf("Bidi after Close = %v, want Canceled", err))
	}
	if _, err := client.Unary(ctx, &echopb.EchoRequest{}, grpc.WaitForReady(true)); status.Code(err) != codes.Canceled {
		require.Fail(t, fmt.Sprintf("WaitForReady Unary after Close = %v, want Canceled", err))
	}
	if err := p.WaitForReady(ctx); status.Code(err) != codes.Canceled {
		require.Fail(t, fmt.Sprintf("WaitForReady after Close = %v, want Canceled", err))
	}
	require.True(t, p.Stats().Closed, "Stats().Closed = false after Close")
}

func TestFailFastWithoutAddresses(t *testing.T) {
	t.Parallel()
	r, target := testutil.ManualTarget()
	r.InitialState(resolver.State{})
	p := testutil.NewPool(t, target, pool.WithResolvers(r))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := echopb.NewEchoClient(p).Unary(ctx, &echopb.EchoRequest{})
	st := status.Convert(err)
	require.Falsef(t, st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "no addresses"), "Unary = %v, want Unavailable naming no addresses", err)
	require.False(t, ctx.Err() != nil, "the call waited for its deadline instead of failing at once")
}

func TestFailFastWhenNothingConnects(t *testing.T) {
	t.Parallel()
	// Addresses nobody listens on: connections are refused.
	dead := []string{testutil.DeadAddr(t), testutil.DeadAddr(t)}
	r, target := testutil.ManualTarget(dead...)
	p := testutil.NewPool(t, target, pool.WithResolvers(r))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := echopb.NewEchoClient(p).Unary(ctx, &echopb.EchoRequest{})
	st := status.Convert(err)
	require.Falsef(t, st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "no ready connection"), "Unary = %v, want Unavailable naming no ready connection", err)
	require.False(t, ctx.Err() != nil, "the call waited for its deadline instead of failing at once")
	if _, err := echopb.NewEchoClient(p).Bidi(ctx); status.Code(err) != codes.Unavailable {
		require.Fail(t, fmt.Sprintf("Bidi = %v, want Unavailable", err))
	}
}
