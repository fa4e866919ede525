package pool_test

import (
	"crypto/tls"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/grpcpool/grpcpool/pool"
)

// When connections cannot be made, the Unavailable
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
			_, err = echoUnary(testutil.ContextFor(t, 10*time.Second), echopb.NewEchoClient(cc))
			require.Contains(t, status.Convert(err).Message(), tc.want, "grpc.ClientConn's message")

			logs := testutil.NewLogRecorder()
			p, err := pool.New("passthrough:///"+tc.addr, pool.WithDialOptions(tc.creds), pool.WithLogger(slog.New(logs)))
			require.NoError(t, err)
			defer p.Close()
			_, err = echoUnary(testutil.ContextFor(t, 10*time.Second), echopb.NewEchoClient(p))
			require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
			msg := status.Convert(err).Message()
			require.Contains(t, msg, tc.want, "the pool's Unavailable message must carry the connection error")
			require.NotContains(t, msg, "1 backends", "counts must name backends and connections correctly")
			require.Contains(t, logs.Text(), tc.want, "the pool's log must record the connection error")
		})
	}
}

// A backend the pool could make no connection to (here
// its address is one grpc.NewClient rejects) gets a message that says so,
// not one that ends in a colon with nothing after it.
func TestNoConnectionMessageIsNotEmpty(t *testing.T) {
	t.Parallel()
	r, target := testutil.ManualTarget("127.0.0.1:1\x7f")
	p := testutil.NewPool(t, target, pool.WithResolvers(r))
	_, err := echoUnary(testutil.ContextFor(t, 10*time.Second), echopb.NewEchoClient(p))
	require.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	msg := strings.TrimSpace(status.Convert(err).Message())
	require.False(t, strings.HasSuffix(msg, ":"), "the message says nothing after its colon: %q", msg)
}
