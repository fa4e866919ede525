package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/grpcpool/grpcpool/breaker"
)

// The zero Settings means the documented defaults.
func ExampleSettings_WithDefaults() {
	s := breaker.Settings{}.WithDefaults()
	fmt.Println("consecutive failures:", s.ConsecutiveFailures)
	fmt.Println("open timeout:", s.OpenTimeout)
	fmt.Println("half-open probes:", s.HalfOpenProbes)
	fmt.Println("interval:", s.Interval)
	// Output:
	// consecutive failures: 5
	// open timeout: 10s
	// half-open probes: 1
	// interval: 0s
}

// Every call goes through Allow, and its result is reported to done.
func ExampleBreaker_Allow() {
	b, err := breaker.New("10.0.0.7:50051", breaker.Settings{ConsecutiveFailures: 3}, nil)
	if err != nil {
		panic(err)
	}
	invoke := func(ctx context.Context) error { // stands for a gRPC call
		return status.Error(codes.Unavailable, "connection refused")
	}
	for i := range 4 {
		done, err := b.Allow()
		if errors.Is(err, breaker.ErrOpen) {
			fmt.Printf("call %d: rejected, try another backend\n", i+1)
			continue
		}
		err = invoke(context.Background())
		done(err)
		fmt.Printf("call %d: %v, breaker %v\n", i+1, status.Code(err), b.State())
	}
	// Output:
	// call 1: Unavailable, breaker closed
	// call 2: Unavailable, breaker closed
	// call 3: Unavailable, breaker open
	// call 4: rejected, try another backend
}

// A custom classifier can count more codes as failures and fall back to
// DefaultClassifier for the rest.
func ExampleSettings_classify() {
	s := breaker.Settings{
		ConsecutiveFailures: 2,
		Classify: func(err error) breaker.Outcome {
			if status.Code(err) == codes.ResourceExhausted {
				return breaker.Failure // this backend sheds load: avoid it
			}
			return breaker.DefaultClassifier(err)
		},
	}
	b, err := breaker.New("backend", s, nil)
	if err != nil {
		panic(err)
	}
	for _, err := range []error{
		status.Error(codes.NotFound, "no such user"),        // success: the backend answered
		status.Error(codes.Canceled, "context canceled"),    // ignored: the caller gave up
		status.Error(codes.ResourceExhausted, "overloaded"), // failure
		status.Error(codes.ResourceExhausted, "overloaded"), // failure: trips
	} {
		done, aerr := b.Allow()
		if aerr != nil {
			panic(aerr)
		}
		done(err)
		fmt.Printf("%-17v -> %-7v (breaker %v)\n", status.Code(err), s.Classify(err), b.State())
	}
	// Output:
	// NotFound          -> success (breaker closed)
	// Canceled          -> ignore  (breaker closed)
	// ResourceExhausted -> failure (breaker closed)
	// ResourceExhausted -> failure (breaker open)
}

// A pool that stops picking an open backend schedules a timer for
// OpenUntil, since the breaker only becomes half-open when it is used.
func ExampleBreaker_OpenUntil() {
	changes := make(chan string, 4)
	onChange := func(name string, from, to breaker.State) {
		changes <- fmt.Sprintf("%s: %v -> %v", name, from, to)
	}
	b, err := breaker.New("backend", breaker.Settings{
		ConsecutiveFailures: 1,
		OpenTimeout:         20 * time.Millisecond,
	}, onChange)
	if err != nil {
		panic(err)
	}
	done, _ := b.Allow()
	done(status.Error(codes.Unavailable, "down"))
	fmt.Println(<-changes)

	timer := time.AfterFunc(time.Until(b.OpenUntil()), func() {
		b.State() // moves the breaker to half-open and reports it
	})
	defer timer.Stop()
	fmt.Println(<-changes)

	done, err = b.Allow() // the probe
	if err != nil {
		panic(err)
	}
	done(nil)
	fmt.Println(<-changes)
	// Output:
	// backend: closed -> open
	// backend: open -> half-open
	// backend: half-open -> closed
}
