// Package codec reads and writes the frames of agentwire's framed transports
// (Unix socket and reverse connections):
//
//	[u32 big-endian length][u8 frame type][protobuf envelope]
//
// The length counts the type byte and the payload. The payload is a whole
// ProxyToAgent or AgentToProxy envelope; the type byte names the oneof case it
// sets (see agentv2.ProxyToAgentFrames and agentv2.AgentToProxyFrames), so a
// reader can skip frame types it does not know without parsing them.
//
// Every error the package returns is an *agentwire.Error wrapping one of the
// sentinel errors below, so callers can switch on [agentwire.CodeOf] or test
// with errors.Is. Only [ErrUnknownFrameType] leaves the stream usable.
package codec
