package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/agentwire/agentwire"
	iwire "github.com/agentwire/agentwire/internal/wire"
)

// Serve accepts connections on ln until ctx ends, the listener is closed,
// or ln fails, and closes ln when it returns. Each connection registers on
// a goroutine of its own, so a slow client never holds up the next. It
// returns nil when stopped by ctx or Close, otherwise ln's error.
func (l *ReverseListener) Serve(ctx context.Context, ln net.Listener) error {
	l.mu.Lock()
	if l.isClosed {
		l.mu.Unlock()
		_ = ln.Close()
		return agentwire.NewError(agentwire.CodeUnavailable, ErrListenerClosed)
	}
	l.listeners[ln] = struct{}{}
	l.serves.Add(1)
	l.mu.Unlock()
	defer l.serves.Done()
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer func() {
		stop()
		_ = ln.Close()
		l.mu.Lock()
		delete(l.listeners, ln)
		l.mu.Unlock()
	}()

	var delay time.Duration
	for {
		nc, err := ln.Accept()
		var ne net.Error
		switch {
		case err == nil:
			delay = 0
		case ctx.Err() != nil || l.ctx.Err() != nil:
			return nil
		case errors.As(err, &ne) && ne.Timeout() || isTemporary(err):
			// Out of file descriptors and the like: wait and retry.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(delay):
			case <-l.closed:
			case <-ctx.Done():
			}
			continue
		default:
			return agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("reverse listener: accept: %w", err))
		}
		if !l.startRegistration(nc) {
			return nil
		}
	}
}

// startRegistration registers nc on a goroutine of its own, unless too
// many are pending or its peer is cooling down; false: the listener closed.
func (l *ReverseListener) startRegistration(nc net.Conn) bool {
	l.mu.Lock()
	if l.isClosed {
		l.mu.Unlock()
		_ = nc.Close()
		return false
	}
	var err error
	if l.pending >= l.cfg.maxPending {
		err = agentwire.Errorf(agentwire.CodeResourceExhausted, "too many pending registrations (%d)", l.cfg.maxPending)
	} else {
		err = l.coolingLocked(peerHost(nc.RemoteAddr()), l.cfg.now())
	}
	if err != nil {
		l.rejected++
		l.mu.Unlock()
		_ = nc.Close()
		l.report(nc.RemoteAddr(), "", err)
		return true
	}
	l.pending++
	l.wg.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.wg.Done()
		l.register(nc)
	}()
	return true
}

// isTemporary reports accept errors worth retrying (EMFILE, ENFILE,
// ECONNABORTED and the like).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// ListenUnix listens on a Unix socket at path (see [ListenReverseUnix]) and
// serves it in the background until Close, which also removes the file.
func (l *ReverseListener) ListenUnix(path string) (net.Addr, error) {
	ln, err := ListenReverseUnix(path)
	if err != nil {
		return nil, err
	}
	return l.serveBackground(ln)
}

// ListenTCP listens on addr ("127.0.0.1:0" picks a port) and serves it in
// the background until Close. With a non-nil tlsConfig connections use
// TLS; with its ClientAuth set to tls.RequireAndVerifyClientCert (and
// ClientCAs), clients without a valid certificate are refused before they
// can register (mTLS).
func (l *ReverseListener) ListenTCP(addr string, tlsConfig *tls.Config) (net.Addr, error) {
	ln, err := ListenReverseTCP(addr, tlsConfig)
	if err != nil {
		return nil, err
	}
	return l.serveBackground(ln)
}

// serveBackground serves ln on a goroutine Close waits for; Close also
// removes ln's socket file, if it has one.
func (l *ReverseListener) serveBackground(ln net.Listener) (net.Addr, error) {
	sock, _ := ln.(*iwire.UnixListener)
	l.mu.Lock()
	if l.isClosed {
		l.mu.Unlock()
		_ = ln.Close()
		if sock != nil {
			sock.Remove()
		}
		return nil, agentwire.NewError(agentwire.CodeUnavailable, ErrListenerClosed)
	}
	if sock != nil {
		l.sockets = append(l.sockets, sock)
	}
	l.wg.Add(1)
	l.mu.Unlock()
	go func() {
		defer l.wg.Done()
		if err := l.Serve(l.ctx, ln); err != nil {
			l.conn.logger.LogAttrs(context.Background(), slog.LevelError, "reverse listener stopped",
				slog.String("addr", ln.Addr().String()), slog.Any("error", err))
		}
	}()
	return ln.Addr(), nil
}

// ListenReverseTCP listens on addr, with TLS if tlsConfig is non-nil (a
// clone of it, with MinVersion raised to TLS 1.2 at least).
func ListenReverseTCP(addr string, tlsConfig *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("listen %s: %w", addr, err))
	}
	if tlsConfig == nil {
		return ln, nil
	}
	cfg := tlsConfig.Clone()
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	return tls.NewListener(ln, cfg), nil
}

// ListenReverseUnix creates a Unix socket at path that only the proxy's
// user can connect to (mode 0600, set before the socket appears: it is
// bound in a private directory and linked into place). A stale socket at
// path (one that refuses connections) is replaced; anything else there is
// an error, and so is a path too long for a socket (InvalidArgument).
// Closing the listener removes the file unless something replaced it.
func ListenReverseUnix(path string) (net.Listener, error) {
	ln, err := iwire.ListenUnix(context.Background(), path, 0o600)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return ln, nil
}
