package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Etcd is a one-member etcd cluster on loopback, with its data in the
// test's temp dir.
type Etcd struct {
	Endpoint string // client URL: "http://127.0.0.1:PORT"

	proc *Process
}

// StartEtcd starts etcd and waits until /health reports a healthy member
// (a leader elected, reads served).
func StartEtcd(t testing.TB) *Etcd {
	t.Helper()
	bin := Need(t, "etcd")
	var lastErr error
	for range 3 { // a port taken between FreePort and bind: try new ports
		e, err := startEtcd(t, bin)
		if err == nil {
			return e
		}
		lastErr = err
	}
	t.Fatalf("etcd: %v", lastErr)
	return nil
}

func startEtcd(t testing.TB, bin string) (*Etcd, error) {
	t.Helper()
	dir := t.TempDir()
	clientURL := "http://127.0.0.1:" + strconv.Itoa(FreePort(t))
	peerURL := "http://127.0.0.1:" + strconv.Itoa(FreePort(t))
	e := &Etcd{Endpoint: clientURL}
	e.proc = startProcess(t, "etcd", bin, []string{
		"--name=default",
		"--data-dir=" + filepath.Join(dir, "data"),
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=default=" + peerURL,
		"--initial-cluster-state=new",
		"--initial-cluster-token=grpcpool-integration",
		"--logger=zap",
		"--log-outputs=stderr",
		"--log-level=warn",
	})
	hc := &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true}, // no idle conns left for goleak
		Timeout:   time.Second,
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	err := Poll(ctx, func() error {
		if err := e.proc.aliveErr(); err != nil {
			return err
		}
		resp, err := hc.Get(clientURL + "/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"health":"true"`) {
			return fmt.Errorf("/health: %s %s", resp.Status, body)
		}
		return nil
	})
	if err != nil {
		if exited, _ := e.proc.Exited(); exited {
			return nil, err
		}
		t.Fatalf("etcd on %s: %v", clientURL, err)
	}
	return e, nil
}

// Client returns a client of this etcd, closed in t.Cleanup.
func (e *Etcd) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{e.Endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      nil, // etcd's default: warnings and errors to stderr
	})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Proc returns the etcd process.
func (e *Etcd) Proc() *Process { return e.proc }
