package lb

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/grpcpool/grpcpool/internal/testutil"
)

// TestBreakerTakesAFailingBackendOut: every call's outcome feeds its
// backend's breaker; with the cap off (maxEjectPercent 100), the breaker
// of a backend that failed takes it out at once: it gets exactly the one
// call that opened it.
func TestBreakerTakesAFailingBackendOut(t *testing.T) {
	ss := startServers(t, 3)
	cc, _ := dial(t, ss, ServiceConfig(Config{
		Size:            1,
		MaxEjectPercent: 100,
		Breaker:         &Breaker{ConsecutiveFailures: 1, OpenTimeout: time.Hour},
	}))
	waitConns(t, ss, 1)
	waitAllCalled(t, cc, ss)
	ss[0].SetFail(codes.Unavailable)
	before := ss[0].Unary()
	failed := 0
	for range 60 {
		if _, err := call(cc); err != nil {
			failed++
		}
	}
	if got := ss[0].Unary() - before; got != 1 || failed != 1 {
		t.Fatalf("failing backend got %d calls, %d failed; want exactly the 1 that opened its breaker", got, failed)
	}
}

// TestBreakerEjectionIsCapped: with maxEjectPercent 20 over five backends,
// open breakers take at most one backend out: the first to open. The
// second failing backend stays in, its calls go past its open breaker.
func TestBreakerEjectionIsCapped(t *testing.T) {
	ss := startServers(t, 5)
	cc, _ := dial(t, ss, ServiceConfig(Config{
		Size:            1,
		MaxEjectPercent: 20,
		Breaker:         &Breaker{ConsecutiveFailures: 1, OpenTimeout: time.Hour},
	}))
	waitConns(t, ss, 1)
	waitAllCalled(t, cc, ss)
	ss[0].SetFail(codes.Unavailable)
	ss[1].SetFail(codes.Unavailable)
	// Calls until both have failed once: the first to fail is ejected.
	b0, b1 := ss[0].Unary(), ss[1].Unary()
	first := -1
	for i := 0; ss[0].Unary() == b0 || ss[1].Unary() == b1; i++ {
		if i == 100 {
			t.Fatalf("after 100 calls the failing backends got %d and %d", ss[0].Unary()-b0, ss[1].Unary()-b1)
		}
		_, _ = call(cc)
		if first < 0 && ss[0].Unary()+ss[1].Unary() > b0+b1 {
			first = 0
			if ss[1].Unary() > b1 {
				first = 1
			}
		}
	}
	out, in := ss[first], ss[1-first]
	// The picker follows the second breaker change: the backend left in
	// takes calls again.
	base := in.Unary()
	testutil.WaitFor(t, "the second failing backend to take calls past its open breaker", func() bool {
		_, _ = call(cc)
		return in.Unary() > base
	})
	outBefore, inBefore := out.Unary(), in.Unary()
	for range 50 {
		_, _ = call(cc)
	}
	if got := out.Unary() - outBefore; got != 0 {
		t.Errorf("ejected backend %s got %d of 50 calls, want 0", out.Name(), got)
	}
	if got := in.Unary() - inBefore; got == 0 {
		t.Errorf("backend %s, open but over the ejection cap, got none of 50 calls", in.Name())
	}
}
