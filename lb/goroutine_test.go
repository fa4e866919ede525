package lb

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
)

// policyGoroutines counts the goroutines running the policy's own code:
// those with a frame of package lb or of its event queue, the test's own
// (run by package testing) aside.
func policyGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("testing.")) {
			continue
		}
		if bytes.Contains(g, []byte("grpcpool/lb.")) || bytes.Contains(g, []byte("grpcpool/internal/eventq.")) {
			n++
		}
	}
	return n
}

// TestNoGoroutinePerSubConn: the policy runs one goroutine per instance
// (its event queue), whatever its number of SubConns: the same with
// Size 4 and Size 8 over two backends. grpc's own goroutines per
// connection are logged.
func TestNoGoroutinePerSubConn(t *testing.T) {
	before := runtime.NumGoroutine()
	for _, size := range []int{4, 8} {
		t.Run(fmt.Sprint("size=", size), func(t *testing.T) {
			ss := startServers(t, 2)
			cc, _ := dial(t, ss, ServiceConfig(Config{Size: size}))
			waitConns(t, ss, int64(size))
			mustCall(t, cc, 20)
			var got int
			for range 100 { // a callback of grpc's may be running policy code for a moment
				if got = policyGoroutines(); got == 1 {
					break
				}
				runtime.Gosched()
			}
			if got != 1 {
				t.Fatalf("%d goroutines run the policy's code with %d SubConns, want 1", got, 2*size)
			}
			t.Logf("%d SubConns: %d goroutines in the process (%d before), the policy's: %d", 2*size, runtime.NumGoroutine(), before, got)
		})
	}
}
