package agentwire_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentwire/agentwire"
)

// Every agentwire error carries a gRPC-numbered code; context errors map
// to Canceled and DeadlineExceeded.
func ExampleCodeOf() {
	err := fmt.Errorf("sending event: %w", agentwire.Errorf(agentwire.CodeUnavailable, "agent connection lost"))
	fmt.Println(agentwire.CodeOf(err))

	var e *agentwire.Error
	fmt.Println(errors.As(err, &e), e.Message())

	fmt.Println(agentwire.CodeOf(context.DeadlineExceeded))
	fmt.Println(agentwire.IsWireError(agentwire.NewWireError(agentwire.CodePermissionDenied, "agent says no")))
	// Output:
	// unavailable
	// true agent connection lost
	// deadline_exceeded
	// true
}
