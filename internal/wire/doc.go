// Package wire holds what the proxy side ([transport]) and the agent side
// ([agent]) of agentwire share below the protocol: today, creating the
// Unix sockets each side listens on ([ListenUnix]).
//
// [transport]: https://pkg.go.dev/github.com/agentwire/agentwire/transport
// [agent]: https://pkg.go.dev/github.com/agentwire/agentwire/agent
package wire
