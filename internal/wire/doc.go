// Package wire is the wire layer the proxy side ([transport]) and the agent
// side ([agent]) of agentwire share, so that both follow one set of rules:
// one vtprotobuf codec for gRPC and Connect ([GRPCCodec], [ConnectCodec])
// over sized marshalling ([Marshal]); errors to and from gRPC and Connect
// by code ([FromGRPC], [ToGRPC], [FromConnect], [ToConnect]); the generated
// service under the configured name ([NewServiceClient], [ServiceDesc],
// [Procedure]); and the Unix sockets both listen on ([ListenUnix]).
//
// [transport]: https://pkg.go.dev/github.com/agentwire/agentwire/transport
// [agent]: https://pkg.go.dev/github.com/agentwire/agentwire/agent
package wire
