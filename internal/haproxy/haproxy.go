// Package haproxy starts haproxy as an L4 VIP on loopback: mode tcp,
// balance roundrobin over a list of servers, as a Kubernetes ClusterIP or
// a cloud TCP load balancer is to a gRPC client. The example program's
// scenarios and the integration suite both launch it from here.
package haproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StartTimeout bounds Start and SetServers when their context has no
// earlier deadline.
const StartTimeout = 30 * time.Second

// stopGrace is how long Close waits after SIGTERM before it kills the
// process group.
const stopGrace = 5 * time.Second

// Proxy is a running haproxy in master-worker mode listening on Addr.
//
// SetServers reloads it the way a VIP is reconfigured in production: the
// master starts a new worker with the new server list; the old worker
// stops accepting but keeps every connection it already carries until it
// closes.
//
// A Proxy is safe for concurrent use, except that SetServers calls must
// not overlap.
type Proxy struct {
	Addr string // "127.0.0.1:PORT"
	Port int

	dir        string // config, and the master CLI socket
	cfgPath    string
	masterSock string
	reloads    int // reloads asked for so far; guarded by the SetServers contract

	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{} // closed when the master has exited

	closeOnce sync.Once
}

// Start starts bin (the haproxy binary) with servers ("host:port") behind
// one frontend on a free loopback port, and waits until its worker serves
// that list. A port taken between choosing it and haproxy binding it is
// retried on another, twice.
func Start(ctx context.Context, bin string, servers []string) (*Proxy, error) {
	var errs []error
	for range 3 {
		h, err := start(ctx, bin, servers)
		if err == nil {
			return h, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("haproxy: %w", errors.Join(errs...))
}

func start(ctx context.Context, bin string, servers []string) (*Proxy, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	// Unix socket paths are limited to 108 bytes: a short directory.
	dir, err := os.MkdirTemp("", "hap")
	if err != nil {
		return nil, err
	}
	h := &Proxy{
		Addr:       net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Port:       port,
		dir:        dir,
		cfgPath:    filepath.Join(dir, "haproxy.cfg"),
		masterSock: filepath.Join(dir, "master.sock"),
		out:        &syncBuffer{},
		done:       make(chan struct{}),
	}
	if err := h.writeConfig(servers); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// -W: master-worker, so SIGUSR2 reloads seamlessly (the master keeps
	// the listening socket); -db: stay in the foreground; -S: the master
	// CLI.
	h.cmd = exec.Command(bin, "-W", "-db", "-S", h.masterSock, "-f", h.cfgPath)
	h.cmd.Dir = dir
	h.cmd.Stdout = h.out
	h.cmd.Stderr = h.out
	h.cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // so Close can kill the workers the master forked
		Pdeathsig: syscall.SIGKILL, // so nothing outlives a program that crashed
	}
	if err := h.cmd.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() {
		_ = h.cmd.Wait()
		close(h.done)
	}()
	if err := h.waitServing(ctx, servers, 0); err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("on %s: %w; output: %s", h.Addr, err, strings.TrimSpace(h.Output()))
	}
	return h, nil
}

// SetServers rewrites the configuration with servers, reloads haproxy
// (SIGUSR2 to the master) and waits until the new worker serves them.
// Connections made before the reload stay with the old worker and keep
// going to the server they went to.
func (h *Proxy) SetServers(ctx context.Context, servers []string) error {
	if err := h.writeConfig(servers); err != nil {
		return err
	}
	h.reloads++
	if err := h.cmd.Process.Signal(syscall.SIGUSR2); err != nil {
		return fmt.Errorf("haproxy: SIGUSR2: %w", err)
	}
	if err := h.waitServing(ctx, servers, h.reloads); err != nil {
		return fmt.Errorf("haproxy: reload %d: %w", h.reloads, err)
	}
	return nil
}

// ShowProc returns the master CLI's "show proc": the master, the current
// worker and the old workers still draining connections.
func (h *Proxy) ShowProc(ctx context.Context) (string, error) {
	return h.cli(ctx, "show proc")
}

// Exited reports whether the master process has exited.
func (h *Proxy) Exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// Output returns what haproxy has written to stdout and stderr so far.
func (h *Proxy) Output() string { return h.out.String() }

// Close stops haproxy (SIGTERM to its process group, SIGKILL after 5 s)
// and removes its directory. It is idempotent and returns nil.
func (h *Proxy) Close() error {
	h.closeOnce.Do(func() {
		pgid := -h.cmd.Process.Pid
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		t := time.NewTimer(stopGrace)
		defer t.Stop()
		select {
		case <-h.done:
		case <-t.C:
			_ = syscall.Kill(pgid, syscall.SIGKILL)
			<-h.done
		}
		// Workers of the group that outlived the master.
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		_ = os.RemoveAll(h.dir)
	})
	return nil
}

// waitServing polls until the master has done reloads reloads without a
// failure and its newest worker lists exactly servers.
func (h *Proxy) waitServing(ctx context.Context, servers []string, reloads int) error {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := h.serving(ctx, servers, reloads)
		if err == nil {
			return nil
		}
		if h.Exited() {
			return fmt.Errorf("haproxy exited: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

func (h *Proxy) serving(ctx context.Context, servers []string, reloads int) error {
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
	if got := serverAddrs(state); !sameSet(got, servers) {
		return fmt.Errorf("worker serves %v, want %v", got, servers)
	}
	return nil
}

// cli sends one command to the master CLI and returns the answer.
func (h *Proxy) cli(ctx context.Context, cmd string) (string, error) {
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

func (h *Proxy) writeConfig(servers []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, `global
  maxconn 4000

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
		return fmt.Errorf("haproxy: write config: %w", err)
	}
	return os.Rename(tmp, h.cfgPath)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
