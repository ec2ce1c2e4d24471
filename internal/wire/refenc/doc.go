// Package refenc translates agentwire's envelopes to and from the frames
// the reference implementation (Zentinel's agent-protocol crate, v2
// uds.rs, uds_server.rs and reverse.rs) speaks on Unix sockets and reverse
// connections: the same [u32 BE length][u8 type][payload] framing as
// package codec, with a JSON or MessagePack payload shaped by serde.
//
// The handshake and the reverse registration are always JSON; the
// encoding negotiated there carries the rest. MessagePack follows
// rmp_serde::to_vec: structs are positional arrays, so field order is part
// of the wire, except for events, which the reference flattens into a map
// next to their correlation id. docs/protocol.md ("Reference encodings")
// has the tables; the golden frames in internal/reftest/testdata pin them.
//
// Every function is safe for concurrent use. Bad input yields an
// *agentwire.Error wrapping [ErrMalformed] or [ErrUnknownType], never a
// panic.
package refenc
