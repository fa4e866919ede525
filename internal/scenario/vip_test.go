package scenario

import (
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/pool"
)

// One ClientConn through an L4 proxy puts every stream on one backend; a
// pool of 6 connections spreads them.
//
// The proxy hands connections to backends in turn and the pool's
// RoundRobin takes its connections in turn, so its spread is exact; how
// LeastActive spreads concurrent streams depends on timing, so only "no
// backend left out" is asserted for it.
func TestVIP(t *testing.T) {
	t.Parallel()
	for _, proxy := range []string{"internal", "haproxy"} {
		t.Run(proxy, func(t *testing.T) {
			if proxy == "haproxy" {
				if _, err := exec.LookPath("haproxy"); err != nil {
					if os.Getenv("CI") != "" {
						t.Fatalf("haproxy not installed, and CI is set: .ci/run installs it (%v)", err)
					}
					t.Skip("haproxy not installed (apt-get install -y -q haproxy)")
				}
			}
			res, err := RunVIP(scenarioContext(t), VIPConfig{Streams: 60, Proxy: proxy, PoolOptions: noStallLearning}, t.Logf)
			require.NoError(t, err)
			t.Log(res.Table())
			require.Len(t, res.Clients, 3)

			cc := res.Clients[0]
			assert.False(t, cc.Pool)
			assert.Equal(t, 3.0, cc.MaxOverMean(), "grpc.ClientConn streams %v", cc.Streams)
			for _, c := range res.Clients[1:] {
				require.True(t, c.Pool)
				assert.Equal(t, 6, c.Conns)
				assert.Equal(t, int64(60), sum(c.Streams), c.Name)
				switch c.Policy {
				case pool.RoundRobin:
					// Round-robin over the 6 connections, 2 behind each
					// backend: each connection within one pick per P of its
					// 10 streams (tickets per P when concurrent picks
					// collide, as in TestDirect), each backend within 2 per P.
					slack := float64(2 * runtime.GOMAXPROCS(0))
					for i, n := range c.Streams {
						assert.InDelta(t, 20, n, slack, "%s streams per backend %v (backend %d)", c.Name, c.Streams, i)
					}
				default:
					assert.NotContains(t, c.Streams, int64(0), c.Name)
				}
			}
		})
	}
}

func TestStartL4Unknown(t *testing.T) {
	_, err := startL4(scenarioContext(t), "nginx", nil)
	require.Error(t, err)
}
