package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agentwire/agentwire"
)

// TestFromLibraries: errors of either library map by code alone: the text
// of a status says nothing (an Internal status that reads like grpc-go's
// decoding failure is Internal, nothing more); context errors map to their
// codes; an *agentwire.Error passes; anything else is Unknown.
func TestFromLibraries(t *testing.T) {
	t.Parallel()
	own := agentwire.Errorf(agentwire.CodeAborted, "own")
	for _, tt := range []struct {
		name       string
		grpc, conn error
		want       agentwire.Code
	}{
		{"status", status.Error(codes.ResourceExhausted, "anything"), connect.NewError(connect.CodeResourceExhausted, errors.New("anything")), agentwire.CodeResourceExhausted},
		{"text says nothing", status.Error(codes.Internal, "grpc: failed to unmarshal the received message"), connect.NewError(connect.CodeInternal, errors.New("unmarshal")), agentwire.CodeInternal},
		{"wrapped", fmt.Errorf("open: %w", status.Error(codes.Unimplemented, "unknown service")), fmt.Errorf("open: %w", connect.NewError(connect.CodeUnimplemented, nil)), agentwire.CodeUnimplemented},
		{"canceled", context.Canceled, fmt.Errorf("x: %w", context.Canceled), agentwire.CodeCanceled},
		{"deadline", context.DeadlineExceeded, context.DeadlineExceeded, agentwire.CodeDeadlineExceeded},
		{"agentwire", own, own, agentwire.CodeAborted},
		{"other", io.EOF, io.EOF, agentwire.CodeUnknown},
	} {
		for lib, got := range map[string]error{"grpc": FromGRPC(tt.grpc), "connect": FromConnect(tt.conn)} {
			assert.Equal(t, tt.want, agentwire.CodeOf(got), "%s from %s", tt.name, lib)
			assert.True(t, errors.As(got, new(*agentwire.Error)), "%s from %s", tt.name, lib)
		}
	}
	assert.ErrorIs(t, FromGRPC(fmt.Errorf("x: %w", io.EOF)), io.EOF)
	assert.NoError(t, FromGRPC(nil))
	assert.NoError(t, FromConnect(nil))
}

// TestToLibraries: an agentwire error crosses with its code and its
// message without the code prefix; context errors keep their codes.
func TestToLibraries(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  error
		code agentwire.Code
		msg  string
	}{
		{agentwire.Errorf(agentwire.CodeUnavailable, "agent: draining"), agentwire.CodeUnavailable, "agent: draining"},
		{fmt.Errorf("serve: %w", agentwire.Errorf(agentwire.CodeInvalidArgument, "bad")), agentwire.CodeInvalidArgument, "bad"},
		{context.DeadlineExceeded, agentwire.CodeDeadlineExceeded, "context deadline exceeded"},
		{errors.New("plain"), agentwire.CodeUnknown, "plain"},
	} {
		st := status.Convert(ToGRPC(tt.err))
		assert.Equal(t, codes.Code(tt.code), st.Code())
		assert.Equal(t, tt.msg, st.Message())
		var ce *connect.Error
		assert.True(t, errors.As(ToConnect(tt.err), &ce))
		assert.Equal(t, connect.Code(tt.code), ce.Code())
		assert.Equal(t, tt.msg, ce.Message())
		// And back.
		assert.Equal(t, tt.code, agentwire.CodeOf(FromGRPC(ToGRPC(tt.err))))
		assert.Equal(t, tt.code, agentwire.CodeOf(FromConnect(ToConnect(tt.err))))
	}
	assert.NoError(t, ToGRPC(nil))
	assert.NoError(t, ToConnect(nil))
}
