package pool

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
)

type errPicker struct{ err error }

func (p errPicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{}, p.err
}

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

// parentCC is the grpc.ClientConn side of a leaf: at each state gRPC
// installs, it records how many of the leaf's reports the pool had queued.
type parentCC struct {
	balancer.ClientConn
	p     *Pool
	heard []int
}

func (c *parentCC) UpdateState(balancer.State) {
	c.p.events.mu.Lock()
	defer c.p.events.mu.Unlock()
	c.heard = append(c.heard, len(c.p.events.q))
}

// The pool never holds a connection readier than gRPC does: it hears that
// the connection is READY only after gRPC has installed the READY picker,
// so a call the core then places there is taken, not refused inside as not
// ready and placed again; and it hears that the connection left READY
// before gRPC installs the picker that refuses calls.
func TestLeafReportsReadyAfterGRPCAndTheRestBefore(t *testing.T) {
	p := &Pool{}
	l := &leaf{}
	l.pc.Store(&pconn{p: p})
	parent := &parentCC{p: p}
	l.cc = &leafCC{ClientConn: parent, l: l}
	connecting := errPicker{balancer.ErrNoSubConnAvailable}
	for _, s := range []balancer.State{
		{ConnectivityState: connectivity.Connecting, Picker: connecting},
		{ConnectivityState: connectivity.Ready, Picker: errPicker{nil}},
		{ConnectivityState: connectivity.TransientFailure, Picker: errPicker{errors.New("connection refused")}},
	} {
		l.cc.UpdateState(s)
	}
	require.Equalf(t, []int{1, 1, 3}, parent.heard, "reports queued for the pool at each of gRPC's installs (CONNECTING, READY, TRANSIENT_FAILURE): got %v, want [1 1 3]", parent.heard)
	require.Len(t, p.events.q, 3, "every state reported")
}
