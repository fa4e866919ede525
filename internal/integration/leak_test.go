package integration

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that no goroutine outlives the tests: not the pool's, not
// the etcd client's (closed in t.Cleanup), not the harness's.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
