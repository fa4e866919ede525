package scenario

import (
	"os"
	"os/exec"
	"testing"
)

// One ClientConn through an L4 proxy puts every stream on one backend; a
// pool of 6 connections spreads them.
func TestVIP(t *testing.T) {
	for _, proxy := range []string{"internal", "haproxy"} {
		t.Run(proxy, func(t *testing.T) {
			if proxy == "haproxy" {
				if _, err := exec.LookPath("haproxy"); err != nil {
					if os.Getenv("CI") != "" {
						t.Fatalf("haproxy not installed, and CI is set: .ci/run installs it (%v)", err)
					}
					t.Skip("haproxy not installed (apt-get install -y haproxy)")
				}
			}
			tab, err := RunVIP(scenarioContext(t), VIPConfig{Streams: 60, Proxy: proxy}, t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			logTable(t, tab)
			if got := cell(t, tab, "grpc.ClientConn", "max/mean"); got != "3.00" {
				t.Errorf("grpc.ClientConn max/mean: got %s, want 3.00", got)
			}
			for _, row := range []string{"pool WithSize(6) RoundRobin", "pool WithSize(6) LeastActive"} {
				if got := number(t, cell(t, tab, row, "max/mean")); got > 1.15 {
					t.Errorf("%s max/mean: got %.2f, want <= 1.15", row, got)
				}
			}
		})
	}
}

func TestStartL4Unknown(t *testing.T) {
	if _, err := startL4(scenarioContext(t), "nginx", nil); err == nil {
		t.Fatal("startL4(nginx): got nil error")
	}
}
