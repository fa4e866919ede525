package testutil_test

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/grpcpool/grpcpool/example/echopb"
	"github.com/grpcpool/grpcpool/internal/backend"
	"github.com/grpcpool/grpcpool/internal/testutil"
)

// A Port serves, goes down (each connection reset before a byte) when its
// server stops, and serves again at the same address when another starts.
func TestPortStaysBoundWhileItsServerIsDown(t *testing.T) {
	t.Parallel()
	bs, ports := testutil.StartBackendsOnPorts(t, 1)
	addr := ports[0].Addr()
	require.Equal(t, addr, bs[0].Addr())
	unary := func() (string, error) {
		cc, err := grpc.NewClient("passthrough:///"+addr, testutil.Insecure)
		require.NoError(t, err)
		defer cc.Close()
		r, err := echopb.NewEchoClient(cc).Unary(testutil.ContextFor(t, 5*time.Second), &echopb.EchoRequest{})
		return r.GetBackend(), err
	}
	got, err := unary()
	require.NoError(t, err)
	require.Equal(t, "b0", got)
	_, err = ports[0].Listen()
	require.Error(t, err, "a second listener while the first is open")

	bs[0].Stop()
	// The reset may reach the client during its connect or after it.
	if c, err := net.Dial("tcp", addr); err == nil {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Minute)))
		n, err := c.Read(make([]byte, 1))
		require.Zero(t, n)
		require.ErrorIs(t, err, syscall.ECONNRESET, "a read from the port while its server is down")
		require.NoError(t, c.Close())
	} else {
		require.ErrorIs(t, err, syscall.ECONNRESET)
	}
	if l, err := net.Listen("tcp", addr); err == nil {
		_ = l.Close()
		require.Fail(t, "the port was free to listen on while down")
	}

	testutil.StartBackendOn(t, ports[0], backend.Options{Name: "again"})
	got, err = unary()
	require.NoError(t, err)
	require.Equal(t, "again", got)
}
