package pool

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"

	"github.com/grpcpool/grpcpool/internal/core"
)

// The server's grpc-retry-pushback-ms is read from the attempt's trailer;
// a missing, malformed or negative value ("do not retry") gives 0, and the
// failure penalty applies.
func TestPushback(t *testing.T) {
	for _, tt := range []struct {
		md   metadata.MD
		want time.Duration
	}{
		{nil, 0},
		{metadata.Pairs(core.PushbackKey, "250"), 250 * time.Millisecond},
		{metadata.Pairs(core.PushbackKey, "-1"), 0},
		{metadata.Pairs(core.PushbackKey, "soon"), 0},
	} {
		require.Equal(t, tt.want, core.Pushback(tt.md), "%v", tt.md)
	}
}
