package breaker

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Outcome is what a call's result says about the health of the backend that
// served it.
type Outcome int

const (
	// Success means the backend answered: the call counts as a success.
	Success Outcome = iota
	// Failure means the backend looks unhealthy: the call counts as a
	// failure and may trip the breaker.
	Failure
	// Ignore means the result says nothing about the backend (for example
	// the caller canceled the call). It is counted neither as a success nor
	// as a failure, and a half-open probe that ends this way frees its slot
	// for another probe.
	Ignore
)

// String returns "success", "failure" or "ignore".
func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Ignore:
		return "ignore"
	default:
		return fmt.Sprintf("Outcome(%d)", int(o))
	}
}

// FailureCodes returns the gRPC codes that [DefaultClassifier] counts as
// backend failures: Unavailable, Internal, Unknown, DataLoss and
// DeadlineExceeded. It returns a new slice on every call; changing it does
// not change DefaultClassifier. To count other codes, set
// [Settings.Classify] to a function that handles them and falls back to
// DefaultClassifier.
func FailureCodes() []codes.Code {
	return []codes.Code{
		codes.Unavailable,
		codes.Internal,
		codes.Unknown,
		codes.DataLoss,
		codes.DeadlineExceeded,
	}
}

// DefaultClassifier is the [Settings.Classify] used when none is set. It is
// safe for concurrent use and does not allocate for nil errors or gRPC
// status errors.
//
//   - nil is a [Success].
//   - A gRPC status error (found with [status.Code], so also when wrapped)
//     with code Canceled is [Ignore]: the caller gave up, which says nothing
//     about the backend.
//   - Unavailable, Internal, Unknown, DataLoss and DeadlineExceeded (see
//     [FailureCodes]) are a [Failure].
//   - Every other code (InvalidArgument, NotFound, AlreadyExists,
//     PermissionDenied, Unauthenticated, FailedPrecondition, OutOfRange,
//     Unimplemented, Aborted, ResourceExhausted, ...) is a [Success]: it
//     describes the request, and the backend was able to answer.
//   - An error that is not a gRPC status is a [Failure], except one for
//     which errors.Is(err, context.Canceled) holds, which is [Ignore].
//     context.DeadlineExceeded is a Failure.
func DefaultClassifier(err error) Outcome {
	if err == nil {
		return Success
	}
	code := status.Code(err)
	if code == codes.Unknown {
		// Either a status with code Unknown or not a status at all.
		if errors.Is(err, context.Canceled) {
			return Ignore
		}
		return Failure
	}
	return codeOutcome(code)
}

// codeOutcome classifies a gRPC code as documented on DefaultClassifier.
func codeOutcome(c codes.Code) Outcome {
	switch c {
	case codes.Canceled:
		return Ignore
	case codes.Unavailable, codes.Internal, codes.Unknown, codes.DataLoss, codes.DeadlineExceeded:
		return Failure
	default:
		return Success
	}
}
