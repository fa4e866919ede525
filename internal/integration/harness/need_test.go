package harness_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/grpcpool/grpcpool/internal/integration/harness"
)

// recorder is a testing.TB that records Fatalf and Skipf instead of
// stopping the goroutine.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Fatalf(f string, args ...any) { r.fatal = fmt.Sprintf(f, args...) }
func (r *recorder) Skipf(f string, args ...any)  { r.skip = fmt.Sprintf(f, args...) }

func TestNeedMissingBinary(t *testing.T) {
	tests := []struct {
		ci        string
		wantFatal bool
	}{
		{ci: "true", wantFatal: true},
		{ci: "", wantFatal: false},
	}
	for _, tt := range tests {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			r := &recorder{TB: t}
			got := harness.Need(r, "etcd-no-such-binary")
			if got != "" {
				t.Fatalf("path: got %q, want empty", got)
			}
			msg := r.skip
			if tt.wantFatal {
				msg = r.fatal
			}
			if msg == "" || (tt.wantFatal && r.skip != "") || (!tt.wantFatal && r.fatal != "") {
				t.Fatalf("got fatal %q and skip %q; want only a %s", r.fatal, r.skip, map[bool]string{true: "fatal", false: "skip"}[tt.wantFatal])
			}
			if !strings.Contains(msg, "apt-get install -y") {
				t.Errorf("message %q does not say how to install", msg)
			}
		})
	}
}

func TestNeedLooksInSbin(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/haproxy"); err != nil {
		t.Skip("/usr/sbin/haproxy not installed")
	}
	t.Setenv("PATH", "/usr/bin:/bin")
	if got, want := harness.Need(t, "haproxy"), "/usr/sbin/haproxy"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
