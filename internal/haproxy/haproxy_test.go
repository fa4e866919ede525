package haproxy

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/grpcpool/grpcpool/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// need returns the haproxy binary; without it the test is skipped, or
// fails when CI is set.
func need(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"haproxy", "/usr/sbin/haproxy"} {
		if bin, err := exec.LookPath(p); err == nil {
			return bin
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("haproxy not installed, and CI is set: .ci/run installs it")
	}
	t.Skip("haproxy not installed (apt-get install -y -q haproxy)")
	return ""
}

// Connections go to the servers in turn; after a reload new connections
// reach the new list while an old one stays with its server.
func TestRoundRobinAndReload(t *testing.T) {
	bin := need(t)
	addrs := []string{testutil.NameServer(t, "127.0.0.1:0"), testutil.NameServer(t, "127.0.0.1:0"), testutil.NameServer(t, "127.0.0.1:0")}
	ctx := testutil.ContextFor(t, time.Minute)
	h, err := Start(ctx, bin, addrs[:2])
	require.NoError(t, err)
	defer h.Close()

	var got []string
	var conns []*testutil.NameConn
	for range 4 {
		c := testutil.DialName(t, h.Addr)
		conns = append(conns, c)
		got = append(got, c.Server)
	}
	assert.ElementsMatch(t, []string{addrs[0], addrs[0], addrs[1], addrs[1]}, got, "four connections over two servers")
	assert.NotEqual(t, got[0], got[1], "consecutive connections go to different servers")

	require.NoError(t, h.SetServers(ctx, addrs))
	seen := map[string]int{}
	for range 3 {
		c := testutil.DialName(t, h.Addr)
		seen[c.Server]++
		_ = c.Close()
	}
	assert.Equal(t, map[string]int{addrs[0]: 1, addrs[1]: 1, addrs[2]: 1}, seen, "three connections after the reload")

	// A connection from before the reload is still open: the old worker
	// keeps it.
	assert.NoError(t, conns[0].Ping())
	procs, err := h.ShowProc(ctx)
	require.NoError(t, err)
	assert.Contains(t, procs, "master")
	for _, c := range conns {
		_ = c.Close()
	}

	assert.False(t, h.Exited())
	require.NoError(t, h.Close())
	require.NoError(t, h.Close(), "Close is idempotent")
	assert.True(t, h.Exited())
	_, err = os.Stat(h.dir)
	assert.True(t, os.IsNotExist(err), "directory removed")
}

// A configuration haproxy rejects is an error, not a hang.
func TestStartBadServer(t *testing.T) {
	bin := need(t)
	ctx, cancel := context.WithTimeout(testutil.Context(t), 10*time.Second)
	defer cancel()
	_, err := Start(ctx, bin, []string{"not an address"})
	require.Error(t, err)
}

func TestParsers(t *testing.T) {
	reloads, failed, err := masterReloads("#<PID>          <type>          <reloads>       <uptime>        <version>\n" +
		"6729            master          2 [failed: 1]   0d00h00m04s     2.6.12-1+deb12u1\n")
	require.NoError(t, err)
	assert.Equal(t, 2, reloads)
	assert.Equal(t, 1, failed)
	_, _, err = masterReloads("garbage")
	assert.Error(t, err)

	state := "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord\n" +
		"3 be 1 s1 127.0.0.1 2 0 1 1 4 1 0 0 0 0 0 0 - 4001 -\n" +
		"3 be 2 s2 127.0.0.1 2 0 1 1 4 1 0 0 0 0 0 0 - 4002 -\n"
	assert.Equal(t, []string{"127.0.0.1:4001", "127.0.0.1:4002"}, serverAddrs(state))
	assert.True(t, sameSet([]string{"a", "b"}, []string{"b", "a"}))
	assert.False(t, sameSet([]string{"a", "a"}, []string{"a", "b"}))
}
