package integration

import (
	"testing"

	"github.com/grpcpool/grpcpool/internal/testmain"
)

// TestMain checks that no goroutine outlives the tests: not the pool's, not
// the etcd client's (closed in t.Cleanup), not the harness's.
func TestMain(m *testing.M) {
	testmain.Run(m)
}
