package transport

import (
	"context"
	"fmt"
	"net"

	"github.com/agentwire/agentwire"
)

// TransportUnix names the Unix-socket transport.
const TransportUnix = "uds"

// DialUnix connects to an agent's Unix socket at path and handshakes. The
// handshake timeout bounds both steps; ctx may bound them further.
func DialUnix(ctx context.Context, path string, opts ...Option) (Conn, error) {
	cfg := newConfig(opts)
	dctx := ctx
	if cfg.handshakeTimeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, cfg.handshakeTimeout)
		defer cancel()
	}
	var d net.Dialer
	nc, err := d.DialContext(dctx, "unix", path)
	if err != nil {
		if dctx.Err() != nil {
			return nil, agentwire.NewError(agentwire.CodeDeadlineExceeded, fmt.Errorf("dial %s: %w", path, err))
		}
		return nil, agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("dial %s: %w", path, err))
	}
	return startSession(dctx, cfg, newFramedWire(nc, cfg, TransportUnix))
}
