package agentwire

import (
	"context"
	"errors"
	"fmt"
)

// Error is the one error type every agentwire package returns, directly or
// wrapped: use [CodeOf] or errors.As to inspect it. An Error is immutable and
// safe for concurrent use.
type Error struct {
	code Code
	err  error
	// wire is true when the agent sent the error (it answered, but with a
	// failure); false when the proxy side synthesised it (timeouts, dead
	// peers). The pool counts only the latter against connection health.
	wire bool
}

// NewError wraps underlying with a code. underlying may be nil.
func NewError(code Code, underlying error) *Error {
	return &Error{code: code, err: underlying}
}

// Errorf is NewError with a formatted message; %w wraps as fmt.Errorf does.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{code: code, err: fmt.Errorf(format, args...)}
}

// NewWireError returns an error that an agent reported for an event.
func NewWireError(code Code, message string) *Error {
	if code == 0 {
		code = CodeUnknown
	}
	return &Error{code: code, err: errors.New(message), wire: true}
}

// Code returns the error's code.
func (e *Error) Code() Code { return e.code }

// Message returns the underlying error's text without the code prefix.
func (e *Error) Message() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

// Error implements error.
func (e *Error) Error() string {
	msg := e.Message()
	if msg == "" {
		return e.code.String()
	}
	return e.code.String() + ": " + msg
}

// Unwrap returns the underlying error, for errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.err }

// IsWireError reports whether err is an *Error that the agent sent, as
// opposed to one the proxy side produced (timeouts, dead peers, limits).
func IsWireError(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.wire
}

// CodeOf returns the code of err's *Error, CodeCanceled or
// CodeDeadlineExceeded for context errors, and CodeUnknown otherwise.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.code
	}
	switch {
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return CodeDeadlineExceeded
	}
	return CodeUnknown
}

// WrapContextError converts context.Canceled and context.DeadlineExceeded
// (alone or wrapped) into *Error with the matching code, leaving other errors
// untouched. It is the one place context errors become codes.
func WrapContextError(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	switch {
	case errors.Is(err, context.Canceled):
		return &Error{code: CodeCanceled, err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{code: CodeDeadlineExceeded, err: err}
	}
	return err
}
