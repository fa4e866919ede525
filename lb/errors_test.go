package lb

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/testutil"
)

// dialTarget is dial for a resolver that reports addrs.
func dialTarget(t *testing.T, sc string, addrs ...string) *grpc.ClientConn {
	t.Helper()
	r, target := testutil.ManualTarget(addrs...)
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(r), grpc.WithDefaultServiceConfig(sc))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// wantUnavailable checks that err is codes.Unavailable with a message
// containing every one of parts.
func wantUnavailable(t *testing.T, err error, parts ...string) {
	t.Helper()
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v, want codes.Unavailable", err)
	}
	for _, p := range parts {
		if !strings.Contains(status.Convert(err).Message(), p) {
			t.Fatalf("got %q, want it to say %q", status.Convert(err).Message(), p)
		}
	}
}

// TestNoAddressesFailsSayingSo: a resolver that reports no address makes
// calls fail at once, naming the target.
func TestNoAddressesFailsSayingSo(t *testing.T) {
	r := testutil.NewScheme("empty")
	r.InitialState(resolver.State{})
	cc, err := grpc.NewClient(r.Scheme()+":///svc.test:50051", grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(r), grpc.WithDefaultServiceConfig(ServiceConfig(Config{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	_, err = call(cc)
	wantUnavailable(t, err, core.MsgNoAddresses, "svc.test:50051")
}

// TestConnectionsFailingFailSayingWhy: when every backend fails to
// connect, calls fail at once (once the first attempts have ended) with
// how many backends fail and the last connection error.
func TestConnectionsFailingFailSayingWhy(t *testing.T) {
	cc := dialTarget(t, ServiceConfig(Config{}), testutil.DeadAddr(t), testutil.DeadAddr(t))
	_, err := call(cc)
	wantUnavailable(t, err, core.MsgNotReady, "2 backends failing to connect", "last connection error", "connection refused")
}

// TestWaitForReadyCallsWaitInsteadOfFailing: a WaitForReady call is not
// failed by a backend that cannot connect: it waits, and ends with its
// own deadline, grpc naming the policy's reason.
func TestWaitForReadyCallsWaitInsteadOfFailing(t *testing.T) {
	cc := dialTarget(t, ServiceConfig(Config{}), testutil.DeadAddr(t))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := echopb.NewEchoClient(cc).Unary(ctx, &echopb.EchoRequest{Message: "hi"}, grpc.WaitForReady(true))
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("WaitForReady call: %v, want codes.DeadlineExceeded", err)
	}
}

// TestAllBreakersOpenFailsSayingSo: with every backend's breaker open and
// no ejection cap, calls fail at once saying so.
func TestAllBreakersOpenFailsSayingSo(t *testing.T) {
	ss := startServers(t, 2)
	for _, s := range ss {
		s.SetFail(codes.Unavailable)
	}
	cc, _ := dial(t, ss, ServiceConfig(Config{
		Size:            1,
		MaxEjectPercent: 100,
		Breaker:         &Breaker{ConsecutiveFailures: 1, OpenTimeout: time.Hour},
	}))
	waitConns(t, ss, 1)
	var err error
	testutil.WaitFor(t, "calls to fail without reaching a backend", func() bool {
		_, err = call(cc)
		return strings.Contains(status.Convert(err).Message(), "grpcpool:") // not a backend's own failure
	})
	wantUnavailable(t, err, core.MsgAllOpen, "(2 of 2)")
	if got := testutil.Sum(unaryOf(ss)); got != 2 {
		t.Errorf("backends got %d calls, want the 2 that opened their breakers", got)
	}
}

// TestBadConfigFailsNewClientNamingTheField: grpc.NewClient rejects a
// default service config whose policy config is invalid, with the
// policy's error naming the field.
func TestBadConfigFailsNewClientNamingTheField(t *testing.T) {
	for _, tc := range []struct{ sc, want string }{
		{ServiceConfig(Config{Size: -1}), "size: must be between 1 and 1024"},
		{`{"loadBalancingConfig":[{"grpcpool":{"sise":4}}]}`, `unknown field "sise"`},
		{`{"loadBalancingConfig":[{"grpcpool":{"maxConnAge":"10 minutes"}}]}`, "maxConnAge: want a duration"},
		{`{"loadBalancingConfig":[{"grpcpool":{"breaker":{"openTimeout":"-1s"}}}]}`, "breaker.openTimeout: must not be negative"},
	} {
		_, err := grpc.NewClient("passthrough:///x", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(tc.sc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: grpc.NewClient error %v, want one containing %q", tc.sc, err, tc.want)
		}
		if err != nil && !errors.Is(err, ErrInvalidConfig) && !strings.Contains(err.Error(), ErrInvalidConfig.Error()) {
			t.Errorf("%s: %v does not carry ErrInvalidConfig", tc.sc, err)
		}
	}
}
