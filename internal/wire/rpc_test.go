package wire

import (
	"errors"
	"io"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/agentwire/agentwire"
)

// fakeRPC is a grpc-go or connect-go stream that fails receives with err.
type fakeRPC struct {
	err  error
	sent []any
}

func (f *fakeRPC) SendMsg(m any) error { f.sent = append(f.sent, m); return nil }
func (f *fakeRPC) RecvMsg(any) error   { return f.err }
func (f *fakeRPC) Send(m any) error    { return f.SendMsg(m) }
func (f *fakeRPC) Receive(any) error   { return f.err }

// TestStream: both adapters pass sends through, let io.EOF (the peer
// finished sending) through as it is, and map other errors by code.
func TestStream(t *testing.T) {
	t.Parallel()
	for name, tt := range map[string]struct {
		wrap func(*fakeRPC) Stream[*int, *int]
		err  error
	}{
		"grpc":    {func(f *fakeRPC) Stream[*int, *int] { return GRPCStream[*int, *int](f) }, status.Error(codes.NotFound, "x")},
		"connect": {func(f *fakeRPC) Stream[*int, *int] { return ConnectStream[*int, *int](f) }, connect.NewError(connect.CodeNotFound, errors.New("x"))},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := &fakeRPC{}
			s := tt.wrap(f)
			v := 1
			assert.NoError(t, s.Send(&v))
			assert.Equal(t, []any{&v}, f.sent)
			assert.NoError(t, s.Recv(&v))
			f.err = io.EOF
			assert.Same(t, io.EOF, s.Recv(&v))
			f.err = tt.err
			assert.Equal(t, agentwire.CodeNotFound, agentwire.CodeOf(s.Recv(&v)))
		})
	}
}
