// Package reftest holds test peers that speak the reference (Zentinel)
// Unix-socket and reverse-connection protocol — JSON handshake, JSON or
// MessagePack payloads — written from the reference's formats and
// independent of agentwire's own codec, plus the golden frames in testdata.
// Only tests import it.
package reftest
