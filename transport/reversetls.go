package transport

import (
	"context"
	"crypto/tls"

	"github.com/agentwire/agentwire"
)

// tlsHandshake runs the TLS handshake of a connection from a TLS listener
// and returns ctx carrying its state for [PeerTLSState]; plaintext
// connections pass through. A failed handshake is Unauthenticated.
func (r *registration) tlsHandshake(ctx context.Context) (context.Context, error) {
	tc, ok := r.nc.(*tls.Conn)
	if !ok {
		return ctx, nil
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return ctx, r.l.ioErr(ctx, "tls handshake", err, agentwire.CodeUnauthenticated)
	}
	state := tc.ConnectionState()
	return context.WithValue(ctx, tlsStateKey{}, &state), nil
}

type tlsStateKey struct{}

// PeerTLSState returns the TLS state of the registering connection, for a
// [TokenVerifier] that binds agent ids to client certificates. ok is false
// on plaintext listeners.
func PeerTLSState(ctx context.Context) (state *tls.ConnectionState, ok bool) {
	state, ok = ctx.Value(tlsStateKey{}).(*tls.ConnectionState)
	return state, ok
}
