package agentwire

import (
	"fmt"
	"strings"
)

// Code is an error's category, numbered as gRPC status codes are so that
// codes survive a trip over any transport unchanged. There is no "OK": a nil
// error means success.
type Code uint32

// The codes agentwire uses. Their meanings follow gRPC's.
const (
	// CodeCanceled: the caller cancelled the call (context cancelled or an
	// explicit cancel). Never counted as a connection failure.
	CodeCanceled Code = 1
	// CodeUnknown: an error without a more specific code.
	CodeUnknown Code = 2
	// CodeInvalidArgument: the caller passed a malformed event or option.
	CodeInvalidArgument Code = 3
	// CodeDeadlineExceeded: the call's deadline passed before the agent answered.
	CodeDeadlineExceeded Code = 4
	// CodeNotFound: an unknown agent, connection or correlation id.
	CodeNotFound Code = 5
	// CodeAlreadyExists: a duplicate registration or id.
	CodeAlreadyExists Code = 6
	// CodePermissionDenied: an agent or peer that is not allowed.
	CodePermissionDenied Code = 7
	// CodeResourceExhausted: a size or concurrency limit was hit, or the agent
	// asked the proxy to pause (flow control).
	CodeResourceExhausted Code = 8
	// CodeFailedPrecondition: the connection is in the wrong state for the call,
	// for example draining, or the request's affinity target is gone.
	CodeFailedPrecondition Code = 9
	// CodeAborted: the operation was abandoned, for example by a concurrent drain.
	CodeAborted Code = 10
	// CodeOutOfRange: a value outside the range the protocol allows.
	CodeOutOfRange Code = 11
	// CodeUnimplemented: the peer does not support the event or feature.
	CodeUnimplemented Code = 12
	// CodeInternal: a broken invariant or a protocol violation by the peer.
	CodeInternal Code = 13
	// CodeUnavailable: the peer is unreachable or the connection dropped.
	// Retrying on another connection may succeed.
	CodeUnavailable Code = 14
	// CodeDataLoss: a frame or message was truncated or corrupt.
	CodeDataLoss Code = 15
	// CodeUnauthenticated: missing or invalid credentials.
	CodeUnauthenticated Code = 16

	minCode = CodeCanceled
	maxCode = CodeUnauthenticated
)

var codeNames = [...]string{
	CodeCanceled:           "canceled",
	CodeUnknown:            "unknown",
	CodeInvalidArgument:    "invalid_argument",
	CodeDeadlineExceeded:   "deadline_exceeded",
	CodeNotFound:           "not_found",
	CodeAlreadyExists:      "already_exists",
	CodePermissionDenied:   "permission_denied",
	CodeResourceExhausted:  "resource_exhausted",
	CodeFailedPrecondition: "failed_precondition",
	CodeAborted:            "aborted",
	CodeOutOfRange:         "out_of_range",
	CodeUnimplemented:      "unimplemented",
	CodeInternal:           "internal",
	CodeUnavailable:        "unavailable",
	CodeDataLoss:           "data_loss",
	CodeUnauthenticated:    "unauthenticated",
}

// String returns the code's snake_case name, as gRPC-Web and Connect spell it.
func (c Code) String() string {
	if c >= minCode && c <= maxCode {
		return codeNames[c]
	}
	return fmt.Sprintf("code_%d", uint32(c))
}

// MarshalText implements encoding.TextMarshaler.
func (c Code) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (c *Code) UnmarshalText(b []byte) error {
	s := string(b)
	for i := minCode; i <= maxCode; i++ {
		if codeNames[i] == s {
			*c = i
			return nil
		}
	}
	var n uint32
	if _, err := fmt.Sscanf(strings.TrimPrefix(s, "code_"), "%d", &n); err == nil && strings.HasPrefix(s, "code_") {
		*c = Code(n)
		return nil
	}
	return fmt.Errorf("agentwire: invalid code %q", s)
}
