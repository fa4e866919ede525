package harness

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stopGrace is how long a stopped process gets to exit after SIGTERM before
// its whole process group is killed.
const stopGrace = 10 * time.Second

// Process is a child process started by the harness, in its own process
// group, with stdout and stderr going to a log file in the test's temp dir.
type Process struct {
	Name    string // what it is, for messages: "dnsmasq", "haproxy", "etcd"
	LogPath string // its combined stdout and stderr

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result; read only after done is closed
}

// startProcess starts bin with args and registers its stop in t.Cleanup.
func startProcess(t testing.TB, name, bin string, args []string) *Process {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("%s: create log: %v", name, err)
	}
	defer logFile.Close() // the child keeps its own copy of the descriptor

	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,            // so stop can kill the workers a master forked
		Pdeathsig: syscall.SIGKILL, // so nothing outlives a test binary that crashed
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: start %s: %v", name, bin, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("%s log (%s), last lines:\n%s", name, logPath, p.LogTail(40))
		}
	})
	return p
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process (not its group).
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// LogTail returns the last n lines of the process's log.
func (p *Process) LogTail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop sends SIGTERM, waits up to stopGrace, then kills the process group.
// The group is killed in any case so that no forked worker is left.
func (p *Process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// aliveErr returns an error when the process has already exited: used in
// readiness polls so a crash at startup is reported at once with its log.
func (p *Process) aliveErr() error {
	if exited, err := p.Exited(); exited {
		return fmt.Errorf("%s exited (%v); log:\n%s", p.Name, err, p.LogTail(20))
	}
	return nil
}

// FreePort returns a TCP port on which every one of hosts (IPv4 literals,
// default 127.0.0.1) can listen right now, and on which UDP on hosts[0] is
// free too (dnsmasq needs both). The ports are released before returning,
// so another process can still take the port: callers that can, retry.
func FreePort(t testing.TB, hosts ...string) int {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1"}
	}
	for range 50 {
		l, err := net.Listen("tcp4", net.JoinHostPort(hosts[0], "0"))
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		held := []func() error{l.Close}
		ok := true
		for _, h := range hosts[1:] {
			l2, err := net.Listen("tcp4", net.JoinHostPort(h, fmt.Sprint(port)))
			if err != nil {
				ok = false
				break
			}
			held = append(held, l2.Close)
		}
		if ok {
			u, err := net.ListenPacket("udp4", net.JoinHostPort(hosts[0], fmt.Sprint(port)))
			if err != nil {
				ok = false
			} else {
				held = append(held, u.Close)
			}
		}
		for _, c := range held {
			_ = c()
		}
		if ok {
			return port
		}
	}
	t.Fatalf("free port: no port free on all of %v after 50 tries", hosts)
	return 0
}

// LoopbackHosts returns n addresses 127.0.0.<first>, 127.0.0.<first+1>, …
// Linux routes all of 127.0.0.0/8 to lo, so each can be listened on.
func LoopbackHosts(first, n int) []string {
	hosts := make([]string, n)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("127.0.0.%d", first+i)
	}
	return hosts
}
