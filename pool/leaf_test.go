package pool

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type errPicker struct{ err error }

func (p errPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) { return balancer.PickResult{}, p.err }

// Every error a connection's own picker gives — connecting, a failed
// attempt, a failed attempt whose error carries a status of its own — is a
// call that never left the client, which the pool places again.
func TestLeafPickErrorsAreNotSent(t *testing.T) {
	for _, err := range []error{
		balancer.ErrNoSubConnAvailable,
		errors.New("failed to connect to all addresses"),
		status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: connect: connection refused"`),
		status.Error(codes.Internal, "something else"),
	} {
		_, got := leafPicker{errPicker{err}}.Pick(balancer.PickInfo{})
		require.True(t, notSent(got), "%v became %v", err, got)
		require.Equal(t, codes.Unavailable, status.Code(got))
	}
	_, got := leafPicker{nil}.Pick(balancer.PickInfo{})
	require.True(t, notSent(got))
}
