package harness

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// HAProxy is an haproxy in master-worker mode balancing TCP connections
// round-robin over a set of servers: an L4 VIP, as a Kubernetes ClusterIP
// or a cloud load balancer is to a gRPC client. It listens on Addr.
//
// SetServers reloads it the way a VIP is reconfigured in production: the
// master starts a new worker with the new server list; the old worker stops
// accepting but keeps every connection it already carries until it closes.
type HAProxy struct {
	Addr string // "127.0.0.1:PORT"
	Port int

	proc       *Process
	dir        string
	cfgPath    string
	masterSock string // the master CLI, for "show proc" and "@1 ..." commands
	reloads    int    // reloads asked for so far
}

// StartHAProxy starts haproxy with servers ("host:port") behind one
// frontend and waits until its worker serves that list.
func StartHAProxy(t testing.TB, servers []string) *HAProxy {
	t.Helper()
	bin := Need(t, "haproxy")
	var lastErr error
	for range 3 { // a port taken between FreePort and bind: try new ports
		h, err := startHAProxy(t, bin, servers)
		if err == nil {
			return h
		}
		lastErr = err
	}
	t.Fatalf("haproxy: %v", lastErr)
	return nil
}

func startHAProxy(t testing.TB, bin string, servers []string) (*HAProxy, error) {
	t.Helper()
	// Unix socket paths are limited to 108 bytes; t.TempDir can be longer.
	sockDir, err := os.MkdirTemp("", "hap")
	if err != nil {
		t.Fatalf("haproxy: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(sockDir) })
	port := FreePort(t)
	h := &HAProxy{
		Addr:       net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Port:       port,
		dir:        t.TempDir(),
		masterSock: filepath.Join(sockDir, "master.sock"),
	}
	h.cfgPath = filepath.Join(h.dir, "haproxy.cfg")
	if err := h.writeConfig(servers); err != nil {
		t.Fatalf("haproxy: %v", err)
	}
	// -W: master-worker, so SIGUSR2 reloads seamlessly (the master keeps the
	// listening socket); -db: stay in the foreground; -S: the master CLI.
	h.proc = startProcess(t, "haproxy", bin, []string{"-W", "-db", "-S", h.masterSock, "-f", h.cfgPath})
	if err := h.waitServing(servers, 0); err != nil {
		if exited, _ := h.proc.Exited(); exited {
			return nil, err
		}
		t.Fatalf("haproxy on %s: %v", h.Addr, err)
	}
	return h, nil
}

// SetServers rewrites the configuration with servers, reloads haproxy
// (SIGUSR2 to the master) and waits until the new worker serves them.
// Connections made before the reload stay with the old worker and keep
// going to the server they went to.
func (h *HAProxy) SetServers(t testing.TB, servers []string) {
	t.Helper()
	if err := h.writeConfig(servers); err != nil {
		t.Fatalf("haproxy: %v", err)
	}
	h.reloads++
	if err := h.proc.Signal(syscall.SIGUSR2); err != nil {
		t.Fatalf("haproxy: SIGUSR2: %v", err)
	}
	if err := h.waitServing(servers, h.reloads); err != nil {
		t.Fatalf("haproxy: reload %d: %v", h.reloads, err)
	}
}

// Proc returns the master process.
func (h *HAProxy) Proc() *Process { return h.proc }

// ShowProc returns the master CLI's "show proc": the master, the current
// worker and the old workers still draining connections.
func (h *HAProxy) ShowProc(ctx context.Context) (string, error) {
	return h.cli(ctx, "show proc")
}

// waitServing polls until the master has done reloads reloads without a
// failure and its newest worker lists exactly servers.
func (h *HAProxy) waitServing(servers []string, reloads int) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	return Poll(ctx, func() error {
		if err := h.proc.aliveErr(); err != nil {
			return err
		}
		procs, err := h.cli(ctx, "show proc")
		if err != nil {
			return err
		}
		done, failed, err := masterReloads(procs)
		if err != nil {
			return err
		}
		if failed > 0 {
			return fmt.Errorf("reload failed (bad config?):\n%s", procs)
		}
		if done < reloads {
			return fmt.Errorf("reloads %d, want %d", done, reloads)
		}
		// "@1" sends the command to the newest worker.
		state, err := h.cli(ctx, "@1 show servers state be")
		if err != nil {
			return err
		}
		got := serverAddrs(state)
		if !sameSet(got, servers) {
			return fmt.Errorf("worker serves %v, want %v", got, servers)
		}
		return nil
	})
}

// cli sends one command to the master CLI and returns the answer.
func (h *HAProxy) cli(ctx context.Context, cmd string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", h.masterSock)
	if err != nil {
		return "", err
	}
	defer c.Close()
	deadline := time.Now().Add(2 * time.Second)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = c.SetDeadline(deadline)
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	// The CLI answers and closes only once it sees the end of the input.
	if err := c.(*net.UnixConn).CloseWrite(); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// masterReloads parses "show proc" for the master's reload and failed
// reload counts: "6729  master  1 [failed: 0]  0d00h00m04s  2.6.12".
func masterReloads(showProc string) (reloads, failed int, err error) {
	sc := bufio.NewScanner(strings.NewReader(showProc))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 5 && f[1] == "master" && f[3] == "[failed:" {
			reloads, err1 := strconv.Atoi(f[2])
			failed, err2 := strconv.Atoi(strings.TrimSuffix(f[4], "]"))
			if err1 != nil || err2 != nil {
				break
			}
			return reloads, failed, nil
		}
	}
	return 0, 0, fmt.Errorf("no master line in show proc:\n%s", showProc)
}

// serverAddrs parses "show servers state" (format 1) for "addr:port" of
// each server: field 5 is srv_addr, field 19 srv_port.
func serverAddrs(state string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(state))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || !strings.Contains(line, " ") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 19 {
			continue
		}
		out = append(out, net.JoinHostPort(f[4], f[18]))
	}
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := make(map[string]int, len(a))
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
		if m[s] < 0 {
			return false
		}
	}
	return true
}

func (h *HAProxy) writeConfig(servers []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, `global
  maxconn 2000

defaults
  mode tcp
  timeout connect 2s
  # gRPC streams and idle HTTP/2 connections live long; a VIP does not cut them.
  timeout client 1h
  timeout server 1h

frontend fe
  bind %s
  default_backend be

backend be
  balance roundrobin
`, h.Addr)
	for i, s := range servers {
		fmt.Fprintf(&b, "  server s%d %s\n", i+1, s)
	}
	tmp := h.cfgPath + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return os.Rename(tmp, h.cfgPath)
}
