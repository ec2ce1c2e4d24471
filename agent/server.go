package agent

import (
	"context"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/grpchealth"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Server serves a [Handler] to proxies over framed Unix sockets
// ([Server.ServeUnix], [Server.ServeConn]), grpc-go ([Server.RegisterGRPC])
// and Connect/HTTP ([Server.ConnectHandler], [Server.HTTPHandler]), every
// connection the same way (see the package documentation). A Server is
// safe for concurrent use.
type Server struct {
	h              Handler
	events         agentv2.EventHandler // h, converted once: not per event
	cfg            config
	call           EventFunc       // the interceptors around callHandler
	metrics        MetricsReporter // nil if h reports none
	healthReporter HealthReporter  // nil if h reports none
	checker        *grpchealth.StaticChecker
	watch          *inlineWatch
	// epoch: handler durations are time.Since(epoch), one clock reading.
	epoch  time.Time
	nextID atomic.Uint64
	// wg counts the server's goroutines outside sessions: connections
	// accepted by ServeUnix, gRPC stream readers, the inline watch.
	wg sync.WaitGroup

	mu sync.Mutex // mu guards the following
	// state only grows: running, then draining (Shutdown), then closed.
	state     serverState
	listeners map[net.Listener]struct{}
	streams   map[stream]struct{}
	// sessions are the handshaken connections, oldest first.
	sessions []*session
	// changed is closed and replaced whenever a stream goes away.
	changed chan struct{}
}

type serverState int

const (
	stateRunning serverState = iota
	stateDraining
	stateClosed
)

// NewServer returns a Server for h. It fails with CodeInvalidArgument on
// bad options. h may also implement [MetricsReporter] and [HealthReporter].
func NewServer(h Handler, opts ...Option) (*Server, error) {
	if h == nil {
		return nil, agentwire.Errorf(agentwire.CodeInvalidArgument, "agent: nil handler")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	srv := &Server{
		h:         h,
		events:    h,
		cfg:       cfg,
		checker:   grpchealth.NewStaticChecker(cfg.serviceName),
		listeners: make(map[net.Listener]struct{}),
		streams:   make(map[stream]struct{}),
		changed:   make(chan struct{}),
		epoch:     time.Now(),
	}
	srv.watch = newInlineWatch(srv, cfg.inlineBudget)
	srv.call = srv.chain()
	srv.metrics, _ = h.(MetricsReporter)
	srv.healthReporter, _ = h.(HealthReporter)
	return srv, nil
}

func (srv *Server) nowMs() uint64 { return uint64(srv.cfg.now().UnixMilli()) }

func (srv *Server) draining() bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return srv.state != stateRunning
}

// errServerClosed is the error of connections after Shutdown or Close.
func errServerClosed() error {
	return agentwire.Errorf(agentwire.CodeUnavailable, "agent: server is shutting down")
}

// track registers a connection's stream; false after Shutdown or Close.
func (srv *Server) track(st stream) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.state != stateRunning {
		return false
	}
	srv.streams[st] = struct{}{}
	return true
}

func (srv *Server) untrack(st stream) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	delete(srv.streams, st)
	close(srv.changed)
	srv.changed = make(chan struct{})
}

// goTracked starts f on a goroutine the server waits for in Close; false
// (and f not run) after Close.
func (srv *Server) goTracked(f func()) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.state == stateClosed {
		return false
	}
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		f()
	}()
	return true
}

func (srv *Server) addSession(s *session) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.state == stateClosed {
		return false
	}
	srv.sessions = append(srv.sessions, s)
	srv.watch.launchLocked()
	return true
}

func (srv *Server) removeSession(s *session) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if i := slices.Index(srv.sessions, s); i >= 0 {
		srv.sessions = slices.Delete(srv.sessions, i, i+1)
	}
}

// RequestConfigUpdate sends req on the oldest live connection (every
// connection reaches the same configuration) and waits for the proxy's
// answer, as [Peer.RequestConfigUpdate] does. It fails with
// CodeUnavailable when no proxy is connected.
func (srv *Server) RequestConfigUpdate(ctx context.Context, req *agentv2.ConfigUpdateRequest) (*agentv2.ConfigUpdateResponse, error) {
	srv.mu.Lock()
	var s *session
	if len(srv.sessions) > 0 {
		s = srv.sessions[0]
	}
	srv.mu.Unlock()
	if s == nil {
		return nil, agentwire.Errorf(agentwire.CodeUnavailable, "agent: no proxy connected")
	}
	return s.requestConfigUpdate(ctx, req)
}

// Shutdown stops the server gracefully: it stops accepting connections,
// reports draining (NOT_SERVING on the gRPC health service), waits for the
// events in flight to be answered, then closes every connection and waits
// for the server's goroutines. When ctx ends first it closes everything
// at once, as [Server.Close] does, and returns ctx's error.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.mu.Lock()
	if srv.state == stateRunning {
		srv.state = stateDraining
	}
	lns := srv.takeListenersLocked()
	sessions := slices.Clone(srv.sessions)
	srv.mu.Unlock()
	srv.setServing(false)
	for _, ln := range lns {
		_ = ln.Close()
	}
	for _, s := range sessions {
		s.reportNow()
	}
	var err error
	for _, s := range sessions {
		if err = s.waitIdle(ctx); err != nil {
			break
		}
	}
	if err == nil {
		srv.mu.Lock()
		for st := range srv.streams {
			st.CloseRecv()
		}
		srv.mu.Unlock()
		err = srv.waitStreams(ctx)
	}
	srv.Close()
	return err
}

// Close closes every listener and connection at once, cancelling the
// handlers' contexts, and waits for the server's goroutines (and running
// handlers) to return. Close is idempotent.
func (srv *Server) Close() {
	srv.mu.Lock()
	srv.state = stateClosed
	lns := srv.takeListenersLocked()
	for st := range srv.streams {
		st.Abort()
	}
	sessions := slices.Clone(srv.sessions)
	srv.mu.Unlock()
	// A handler running on its reader keeps it from seeing the abort.
	for _, s := range sessions {
		s.end(agentwire.Errorf(agentwire.CodeUnavailable, "agent: server closed"))
	}
	srv.watch.close()
	srv.setServing(false)
	for _, ln := range lns {
		_ = ln.Close()
	}
	_ = srv.waitStreams(context.Background())
	srv.wg.Wait()
}

func (srv *Server) takeListenersLocked() []net.Listener {
	lns := make([]net.Listener, 0, len(srv.listeners))
	for ln := range srv.listeners {
		lns = append(lns, ln)
		delete(srv.listeners, ln)
	}
	return lns
}

// waitStreams waits until every connection has gone away.
func (srv *Server) waitStreams(ctx context.Context) error {
	for {
		srv.mu.Lock()
		n, ch := len(srv.streams), srv.changed
		srv.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return agentwire.WrapContextError(ctx.Err())
		}
	}
}

func (srv *Server) setServing(ok bool) {
	st := grpchealth.StatusServing
	if !ok {
		st = grpchealth.StatusNotServing
	}
	srv.checker.SetStatus("", st)
	srv.checker.SetStatus(srv.cfg.serviceName, st)
}

// addListener registers ln to be closed by Shutdown and Close; false after
// either.
func (srv *Server) addListener(ln net.Listener) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.state != stateRunning {
		return false
	}
	srv.listeners[ln] = struct{}{}
	return true
}

func (srv *Server) removeListener(ln net.Listener) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	delete(srv.listeners, ln)
}
