// Package wire is the wire layer the proxy side ([transport]) and the agent
// side ([agent]) of agentwire share: one adapter over grpc-go's and
// connect-go's streams ([Stream]) with one vtprotobuf codec ([GRPCCodec],
// [ConnectCodec]) over sized marshalling ([Marshal]) and errors mapped by
// code ([FromGRPC], [ToGRPC], [FromConnect], [ToConnect]); the generated
// services under the configured name ([NewServiceClient], [ServiceDesc],
// [NewConnectClient], [ConnectHandler]); framed connections ([Framed],
// [FrameWriter]); flow control ([PauseSet], [Hysteresis]); and the Unix
// sockets both listen on ([ListenUnix]).
//
// [transport]: https://pkg.go.dev/github.com/agentwire/agentwire/transport
// [agent]: https://pkg.go.dev/github.com/agentwire/agentwire/agent
package wire
