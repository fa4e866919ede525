// Package testmain is the TestMain of every package in the module: it runs
// the package's tests, fails the run when a goroutine outlives them, and
// ends the test process without the race runtime's exit pause.
//
// A process built with -race that ends with status 0 while goroutines are
// alive waits one second (ThreadSanitizer's atexit_sleep_ms) for reports
// from threads still running. Every test binary ends that way, so the pause
// costs a second per package in `go test -race ./...`. Run does without
// it: the testing package has already failed the run if a race was
// detected before the tests ended ("race detected during execution of
// test", or "outside of test execution"); a race among the goroutines
// still ending while goleak waits for them makes Run exit with the race
// runtime's own status, 66; and the report of each race is printed when
// the race is detected. Run keeps the pause when the GORACE environment
// variable is set (the runtime then does what it says) and when coverage
// is on (os.Exit writes the coverage counters).
package testmain

import (
	"os"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

// Run runs m's tests, then fails the run if a goroutine outlives them
// (goleak.VerifyTestMain with opts), and exits the process with the
// result. Call it as the whole body of TestMain.
func Run(m *testing.M, opts ...goleak.Option) {
	goleak.VerifyTestMain(m, append(opts, goleak.Cleanup(exit))...)
}

// raceExit is the status the race runtime exits with when it reported a
// race in a run that otherwise passed.
const raceExit = 66

// exit ends the process with code; see the package doc for when it skips
// the race runtime's exit pause.
func exit(code int) {
	if raceEnabled && os.Getenv("GORACE") == "" && testing.CoverMode() == "" {
		if code == 0 && raceErrors() > 0 {
			code = raceExit
		}
		syscall.Exit(code)
	}
	os.Exit(code)
}
