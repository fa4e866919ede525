package pool_test

import (
	"flag"
	"testing"

	"github.com/grpcpool/grpcpool/internal/testmain"
)

// parallelDefault is how many tests run at once when -parallel is not
// given: most tests wait on real loopback servers and timers, not on the
// CPU, so more of them than GOMAXPROCS (go test's default) overlap their
// waits. A breaker's open timeout or a black hole's deadline is bounded
// in a synctest bubble (over bufconn), exact however busy the machine, and
// a backend restarts behind a testutil.Port, so those tests run in
// parallel too; only tests that need the process to themselves (they
// count its goroutines or allocations, or write grpc's global registry)
// do not call t.Parallel.
const parallelDefault = "8"

func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		if err := flag.Set("test.parallel", parallelDefault); err != nil {
			panic(err)
		}
	}
	testmain.Run(m)
}
