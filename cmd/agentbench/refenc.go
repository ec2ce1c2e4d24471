package main

import "github.com/agentwire/agentwire/transport"

// The reference's Unix-socket encodings (docs/protocol.md, "Reference
// encodings"): the pool over the same agent socket as "uds", speaking JSON
// or MessagePack instead of protobuf. The agent serves all three, so each
// scenario's ratio to "uds" is what the encoding costs.
const (
	tUDSJSON    = "uds-json"
	tUDSMsgPack = "uds-msgpack"
)

// refEncodings maps the scenarios to their encodings.
var refEncodings = map[string]transport.UnixEncoding{
	tUDSJSON:    transport.UnixJSON,
	tUDSMsgPack: transport.UnixMsgPack,
}

// refTransports are the scenarios, measured beside "uds".
var refTransports = []string{tUDSJSON, tUDSMsgPack}

func init() {
	for tr := range refEncodings {
		baselineOf[tr] = tUDS
	}
}

// refEndpoint is the pool endpoint of a reference-encoding scenario.
func refEndpoint(tr string, a agentAddrs) string {
	return "unix://" + a.uds + "?encoding=" + string(refEncodings[tr])
}

// refOption is the dial option of a reference-encoding scenario.
func refOption(tr string) transport.Option {
	return transport.WithUnixEncoding(refEncodings[tr])
}
