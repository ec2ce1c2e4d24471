package wire

import (
	"errors"
	"io"
)

// Stream is one end of a bidi-streaming RPC of grpc-go or connect-go,
// client or handler, as both sides drive it: S is what the side sends
// (its codec hook, see codec.go), R what it receives into (a [Target]).
// Send and Recv may run concurrently with each other, each not with
// itself.
type Stream[S, R any] struct {
	send    func(any) error
	recv    func(any) error
	fromErr func(error) error
}

// grpcStream is what grpc-go's client and server streams share.
type grpcStream interface {
	SendMsg(m any) error
	RecvMsg(m any) error
}

// connectConn is what connect-go's client and handler stream conns share.
type connectConn interface {
	Send(m any) error
	Receive(m any) error
}

// GRPCStream adapts a grpc-go stream (grpc.BidiStreamingClient or
// grpc.BidiStreamingServer).
func GRPCStream[S, R any](s grpcStream) Stream[S, R] {
	return Stream[S, R]{send: s.SendMsg, recv: s.RecvMsg, fromErr: FromGRPC}
}

// ConnectStream adapts the Conn of a connect-go stream
// (BidiStreamForClient.Conn, BidiStream.Conn): its Receive, unlike the
// typed one, takes the caller's target.
func ConnectStream[S, R any](c connectConn) Stream[S, R] {
	return Stream[S, R]{send: c.Send, recv: c.Receive, fromErr: FromConnect}
}

// Send sends m. Its error is the library's: io.EOF when the stream has
// ended, and then Recv tells why.
func (s Stream[S, R]) Send(m S) error { return s.send(m) }

// Recv receives the next message into m. It returns io.EOF when the peer
// has finished sending, and any other error as an *agentwire.Error with
// the library's status code ([FromGRPC], [FromConnect]).
func (s Stream[S, R]) Recv(m R) error {
	err := s.recv(m)
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	return s.fromErr(err)
}
