package testmain_test

import (
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/internal/testmain"
)

func TestMain(m *testing.M) { testmain.Run(m) }

// child names what TestChild does when the test binary runs itself.
const child = "TESTMAIN_CHILD"

// lateRace is what the goroutines of the late-race child write.
var lateRace int

// TestChild is run by TestRunExitCodes in a child process; on its own it
// does nothing.
func TestChild(t *testing.T) {
	switch os.Getenv(child) {
	case "fail":
		t.Error("failing as asked")
	case "leak":
		go func() { select {} }()
	case "race":
		x, done := 0, make(chan struct{})
		go func() { x = 1; close(done) }()
		x = 2
		<-done
		_ = x
	case "late-race":
		// Two goroutines that outlive the test race after it ended,
		// while goleak waits for them to end.
		for range 2 {
			go func() {
				time.Sleep(100 * time.Millisecond)
				lateRace++
			}()
		}
	}
}

// The process ends with the tests' result: 0 when they pass, 1 when a
// test fails, a goroutine outlives the tests or (under -race) a test
// races, and 66 when goroutines race after the tests ended.
func TestRunExitCodes(t *testing.T) {
	t.Parallel()
	want := map[string]int{"pass": 0, "fail": 1, "leak": 1}
	if testmain.RaceEnabled {
		want["race"] = 1
		want["late-race"] = 66 // the race runtime's own exit status
	}
	for mode, want := range want {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), child+"="+mode)
			out, err := cmd.CombinedOutput()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else {
				require.NoError(t, err)
			}
			require.Equalf(t, want, code, "exit code of a run that should %s; output:\n%s", mode, out)
		})
	}
}
