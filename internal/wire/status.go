package wire

import (
	"errors"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agentwire/agentwire"
)

// Errors cross the RPC libraries by code (agentwire's codes are gRPC's),
// never by message text: what a library's error says is for people.

// FromGRPC converts an error from grpc-go into an *agentwire.Error with
// its status code (status.FromError). Errors without a status keep
// agentwire's reading: an *agentwire.Error stays as it is, a context error
// becomes Canceled or DeadlineExceeded ([agentwire.WrapContextError]), any
// other Unknown.
func FromGRPC(err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		return withCode(agentwire.Code(st.Code()), err)
	}
	return fromOther(err)
}

// FromConnect is [FromGRPC] for connect-go's errors (*connect.Error).
func FromConnect(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return withCode(agentwire.Code(ce.Code()), err)
	}
	return fromOther(err)
}

// ToGRPC converts err into a gRPC status error: its code
// ([agentwire.CodeOf], context errors included) and its message without
// the code prefix.
func ToGRPC(err error) error {
	if err == nil {
		return nil
	}
	code, msg := codeAndMessage(err)
	return status.Error(codes.Code(code), msg)
}

// ToConnect is [ToGRPC] for connect-go.
func ToConnect(err error) error {
	if err == nil {
		return nil
	}
	code, msg := codeAndMessage(err)
	return connect.NewError(connect.Code(code), errors.New(msg))
}

func withCode(code agentwire.Code, err error) error {
	if code == 0 { // OK is no error code
		code = agentwire.CodeUnknown
	}
	return agentwire.NewError(code, err)
}

func fromOther(err error) error {
	if e := agentwire.WrapContextError(err); e != err {
		return e
	}
	var e *agentwire.Error
	if errors.As(err, &e) {
		return err
	}
	return agentwire.NewError(agentwire.CodeUnknown, err)
}

func codeAndMessage(err error) (agentwire.Code, string) {
	msg := err.Error()
	var e *agentwire.Error
	if errors.As(err, &e) {
		msg = e.Message()
	}
	return agentwire.CodeOf(err), msg
}
