package transport

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/agentwire/agentwire"
	iwire "github.com/agentwire/agentwire/internal/wire"
)

// TransportReverse names connections that agents dialled to the proxy.
const TransportReverse = "reverse"

// ReverseStats is a snapshot of a listener's counters.
type ReverseStats struct {
	// Pending is connections in registration or handshake now; Live the
	// admitted connections whose Done has not closed.
	Pending, Live int
	// Admitted and Rejected count connections since the listener started.
	Admitted, Rejected uint64
}

// ReverseListener is the proxy side of reverse connections: agents dial it
// and register, and after validation (protocol version, agent id,
// allowlist, token, connection cap, in that order) it runs the framed
// protocol over their connection and hands the [Conn] to the admit
// handler, or with [WithAdmission] to a pool, whose limit then refuses
// connections at registration. One listener can serve several
// net.Listeners (Unix socket and TCP) with one set of limits.
//
// A ReverseListener is safe for concurrent use. Every goroutine it starts
// (accept loops of ListenUnix/ListenTCP, one per pending registration, one
// per admitted connection to release its cap slot) exits by Close.
type ReverseListener struct {
	cfg    reverseConfig
	conn   *config // the admitted connections' options, for proxy id and logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine but accept loops run by callers' Serve
	serves sync.WaitGroup // Serve calls in progress
	closed chan struct{}

	mu sync.Mutex // mu guards the following
	// isClosed is set once Close starts; nothing new starts afterwards.
	isClosed  bool
	listeners map[net.Listener]struct{}
	// sockets are Unix socket files to remove on Close.
	sockets  []*iwire.UnixListener
	pending  int
	perAgent map[string]int
	live     map[Conn]struct{}
	admitted uint64
	rejected uint64
	// peers counts failed registrations by peer address (WithPeerCooldown),
	// last scanned for expired entries at peersPruned.
	peers       map[string]*peerRecord
	peersPruned time.Time
}

// NewReverseListener validates opts and returns a listener that serves
// nothing yet: call Serve, ListenUnix or ListenTCP.
func NewReverseListener(opts ...ReverseOption) (*ReverseListener, error) {
	cfg := reverseConfig{
		timeout:     DefaultRegistrationTimeout,
		maxPerAgent: DefaultMaxConnsPerAgent,
		maxPending:  DefaultMaxPendingRegistrations,
		randRead:    rand.Read,
		now:         time.Now,
	}
	for _, o := range opts {
		o.applyReverse(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, agentwire.NewError(agentwire.CodeInvalidArgument, fmt.Errorf("reverse listener: %w", err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &ReverseListener{
		cfg:       cfg,
		conn:      newConfig(cfg.connOpts),
		ctx:       ctx,
		cancel:    cancel,
		closed:    make(chan struct{}),
		listeners: make(map[net.Listener]struct{}),
		perAgent:  make(map[string]int),
		live:      make(map[Conn]struct{}),
		peers:     make(map[string]*peerRecord),
	}, nil
}

// validate reports every contradictory or missing setting at once.
func (c *reverseConfig) validate() error {
	var errs []error
	switch {
	case c.admission != nil && c.admit != nil:
		errs = append(errs, errors.New("WithAdmission and WithAdmitHandler exclude each other"))
	case c.admission != nil && c.maxPerAgentOK:
		errs = append(errs, errors.New("WithAdmission sets the per-agent limit: drop WithMaxConnsPerAgent"))
	case c.admission == nil && c.admit == nil:
		errs = append(errs, errors.New("an admit handler is required (WithAdmitHandler or WithAdmission)"))
	}
	if c.timeout <= 0 {
		errs = append(errs, errors.New("registration timeout must be positive"))
	}
	if c.maxPerAgent <= 0 || c.maxPending <= 0 {
		errs = append(errs, errors.New("connection limits must be positive"))
	}
	if c.peerFailures < 0 || c.peerFailures > 0 && c.peerCooldown <= 0 {
		errs = append(errs, errors.New("peer cooldown needs a positive failure count and duration"))
	}
	for _, p := range c.allow {
		if _, err := path.Match(p, ""); err != nil {
			errs = append(errs, fmt.Errorf("allowlist pattern %q: %w", p, err))
		}
	}
	if !c.noAuth && len(c.agentTokens) == 0 && len(c.globalTokens) == 0 && c.verifier == nil {
		errs = append(errs, errors.New("no authentication configured: set tokens, a verifier, or WithoutAuth"))
	}
	return errors.Join(errs...)
}

// watch forgets an admitted connection when it ends (or the listener
// closes), then calls ended, if set.
func (l *ReverseListener) watch(c Conn, ended func()) {
	defer l.wg.Done()
	select {
	case <-c.Done():
	case <-l.closed:
	}
	l.mu.Lock()
	delete(l.live, c)
	l.mu.Unlock()
	if ended != nil {
		ended()
	}
}

func (l *ReverseListener) report(peer net.Addr, agentID string, err error) {
	l.conn.logger.LogAttrs(context.Background(), slog.LevelDebug, "reverse connection rejected",
		slog.String("agent_id", agentID), slog.String("peer", addrString(peer)), slog.Any("error", err))
	if f := l.cfg.reject; f != nil {
		f(peer, agentID, err)
	}
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// Stats returns the listener's counters.
func (l *ReverseListener) Stats() ReverseStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return ReverseStats{Pending: l.pending, Live: len(l.live), Admitted: l.admitted, Rejected: l.rejected}
}

// CloseConns closes every connection the listener admitted that is still
// open, waiting for each honouring ctx. The listener keeps serving.
func (l *ReverseListener) CloseConns(ctx context.Context) error {
	l.mu.Lock()
	conns := slices.Collect(maps.Keys(l.live))
	l.mu.Unlock()
	return closeConns(ctx, conns)
}

func closeConns(ctx context.Context, conns []Conn) error {
	var errs []error
	for _, c := range conns {
		if err := c.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close stops accepting, drops pending registrations, removes socket files
// ListenUnix created and, with [WithCloseConnsOnClose], closes the admitted
// connections. It waits, honouring ctx, for every goroutine the listener
// started and for running Serve calls. Close is idempotent.
func (l *ReverseListener) Close(ctx context.Context) error {
	l.mu.Lock()
	var conns []Conn
	if !l.isClosed {
		l.isClosed = true
		close(l.closed)
		l.cancel()
		for ln := range l.listeners {
			_ = ln.Close()
		}
		if l.cfg.closeConns {
			conns = slices.Collect(maps.Keys(l.live))
		}
	}
	sockets := l.sockets
	l.sockets = nil
	l.mu.Unlock()

	err := closeConns(ctx, conns)
	if werr := waitCtx(ctx, &l.serves, &l.wg); werr != nil {
		return errors.Join(err, werr)
	}
	for _, s := range sockets {
		s.Remove()
	}
	return err
}
