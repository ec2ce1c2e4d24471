package caddyagentwire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/transport"
)

// pools holds the pools of every loaded config, keyed by
// [Handler.poolKey]: handlers with the same agents share one, and a
// reload that keeps them keeps its connections (the new config takes a
// reference before the old one drops its own).
var pools = caddy.NewUsagePool()

// sharedPool is a pool in the registry, with its reverse listener if it
// has one; the last reference drains it.
type sharedPool struct {
	*pool.Pool
	drain time.Duration

	mu sync.Mutex // guards the following
	// listen starts the reverse listener, once; nil without one.
	listen  func() (*transport.ReverseListener, error)
	reverse *transport.ReverseListener
}

// startListener starts the pool's reverse listener, if it has one that
// has not started.
func (s *sharedPool) startListener() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listen == nil || s.reverse != nil {
		return nil
	}
	l, err := s.listen()
	if err != nil {
		return fmt.Errorf("agentwire: %w", err)
	}
	s.reverse, s.listen = l, nil
	return nil
}

// listener is the pool's reverse listener, nil if none has started.
func (s *sharedPool) listener() *transport.ReverseListener {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reverse
}

// Destruct implements caddy.Destructor: it stops the reverse listener,
// drains the pool's in-flight events for up to the drain timeout, then
// closes the pool and with it the connections.
func (s *sharedPool) Destruct() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.drain)
	defer cancel()
	var errs []error
	s.mu.Lock()
	l := s.reverse
	s.reverse, s.listen = nil, nil
	s.mu.Unlock()
	if l != nil {
		if err := l.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("agentwire: closing reverse listener: %w", err))
		}
	}
	if err := s.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		errs = append(errs, fmt.Errorf("agentwire: closing pool: %w", err))
	}
	return errors.Join(errs...)
}

// acquirePool returns the shared pool for key, connecting a new one to
// h's agents if there is none.
func (h *Handler) acquirePool(key string, logger *slog.Logger) (*sharedPool, error) {
	v, _, err := pools.LoadOrNew(key, func() (caddy.Destructor, error) {
		return h.newPool(logger)
	})
	if err != nil {
		return nil, err
	}
	return v.(*sharedPool), nil
}

// newPool connects a pool to h's agents; its reverse listener, if h has
// one, starts with the config (App.Start), and reverse agents join when
// they dial in.
func (h *Handler) newPool(logger *slog.Logger) (*sharedPool, error) {
	opts := []pool.Option{pool.WithLogger(logger)}
	if h.Reverse != nil && h.Reverse.MaxConns > 0 {
		opts = append(opts, pool.WithMaxReverseConns(h.Reverse.MaxConns))
	}
	p, err := pool.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("agentwire: %w", err)
	}
	sp := &sharedPool{Pool: p, drain: time.Duration(h.DrainTimeout)}
	if sp.drain == 0 {
		sp.drain = DefaultDrainTimeout
	}
	for i := range h.Agents {
		if h.Agents[i].Endpoint == ReverseEndpoint {
			continue
		}
		if err := addAgent(p, &h.Agents[i]); err != nil {
			_ = p.Close()
			return nil, fmt.Errorf("agentwire: %w", err)
		}
	}
	if r := h.Reverse; r != nil {
		allow, auth := r.Allow, h.auth
		if len(allow) == 0 {
			for _, a := range h.Agents {
				allow = append(allow, a.ID)
			}
		}
		sp.listen = func() (*transport.ReverseListener, error) { return r.listen(p, allow, auth, logger) }
	}
	return sp, nil
}

// addAgent adds a to p and waits for its first connection. Its errors
// name the agent.
func addAgent(p *pool.Pool, a *Agent) error {
	tlsCfg, err := a.TLS.tlsConfig()
	if err != nil {
		return fmt.Errorf("agent %q: %w", a.ID, err)
	}
	handshake := time.Duration(a.HandshakeTimeout)
	if handshake == 0 {
		handshake = DefaultHandshakeTimeout
	}
	topts := []transport.Option{transport.WithProxyID("caddy-agentwire", caddyVersion()),
		transport.WithHandshakeTimeout(handshake)}
	if tlsCfg != nil {
		topts = append(topts, transport.WithTLSConfig(tlsCfg))
	}
	opts := []pool.AgentOption{pool.WithTransportOptions(topts...)}
	if a.Connections > 0 {
		opts = append(opts, pool.WithConnections(a.Connections))
	}
	dial := time.Duration(a.DialTimeout)
	if dial == 0 {
		dial = DefaultDialTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), dial)
	defer cancel()
	return p.AddAgent(ctx, a.ID, a.Endpoint, opts...)
}

// caddyVersion is Caddy's version as the handshake reports it.
func caddyVersion() string {
	v, _ := caddy.Version()
	return v
}
