// Package wire is the wire layer the proxy side ([transport]) and the agent
// side ([agent]) of agentwire share, so that both follow one set of rules:
// for example, both create the Unix sockets they listen on with
// [ListenUnix].
//
// [transport]: https://pkg.go.dev/github.com/agentwire/agentwire/transport
// [agent]: https://pkg.go.dev/github.com/agentwire/agentwire/agent
package wire
