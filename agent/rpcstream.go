package agent

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire"
)

// serveRPC runs a gRPC or Connect stream. The protocol runs on a goroutine
// the server owns, so that the RPC handler can return (which tears the
// stream down and unblocks the reader) when the server ends the
// connection. A graceful end (Shutdown) returns nil, an abrupt one
// Unavailable.
func (srv *Server) serveRPC(ctx context.Context, st stream, end *rpcEnd) error {
	defer end.finish()
	if !srv.track(st) {
		return errServerClosed()
	}
	done := make(chan error, 1)
	if !srv.goTracked(func() {
		defer srv.untrack(st)
		done <- srv.serve(ctx, st)
	}) {
		srv.untrack(st)
		return errServerClosed()
	}
	select {
	case err := <-done:
		return err
	case <-end.stopped:
		if end.graceful.Load() {
			return nil
		}
		return agentwire.Errorf(agentwire.CodeUnavailable, "agent: connection closed by the agent")
	}
}

// rpcEnd is a way for the server to make the RPC handler return, and a
// send lock that keeps sends from touching the stream once it has.
type rpcEnd struct {
	sendMu sync.Mutex // sendMu serialises sends and guards done
	done   bool
	// stopped is closed by CloseRecv and Abort.
	stopped  chan struct{}
	stop     sync.Once
	graceful atomic.Bool
}

func newRPCEnd() *rpcEnd { return &rpcEnd{stopped: make(chan struct{})} }

// finish marks the handler as returned; it waits for a send in progress.
func (r *rpcEnd) finish() {
	r.sendMu.Lock()
	r.done = true
	r.sendMu.Unlock()
}

func (r *rpcEnd) CloseRecv() {
	r.graceful.Store(true)
	r.stop.Do(func() { close(r.stopped) })
}

func (r *rpcEnd) Abort() { r.stop.Do(func() { close(r.stopped) }) }

// rpcStream is a gRPC or Connect server stream as the session sees it.
type rpcStream struct {
	*rpcEnd
	ctx context.Context
	rpc wire.Stream[*sendTarget, *rpcTarget]
	in  rpcTarget  // what Recv receives into
	out sendTarget // what Send sends from; sendMu guards it
}

var _ stream = (*rpcStream)(nil)

// serveRPCStream serves rpc, the stream of an RPC handler with ctx.
func (srv *Server) serveRPCStream(ctx context.Context, rpc wire.Stream[*sendTarget, *rpcTarget]) error {
	st := &rpcStream{rpcEnd: newRPCEnd(), ctx: ctx, rpc: rpc, out: newSendTarget()}
	return srv.serveRPC(ctx, st, st.rpcEnd)
}

// Recv decodes each message into a recycled envelope whose strings and
// bytes live in the stream's slab (see rpcTarget).
func (r *rpcStream) Recv() (*agentv2.ProxyToAgent, error) {
	r.in.prepare()
	err := r.rpc.Recv(&r.in)
	switch {
	case err == nil:
		return r.in.take(), nil
	case errors.Is(err, io.EOF):
		return nil, errHalfClosed
	case r.ctx.Err() != nil:
		return nil, errConnClosed
	}
	return nil, err
}

// Send sends m unless the handler has returned.
func (r *rpcStream) Send(_ context.Context, m *agentv2.AgentToProxy) error {
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	if r.done {
		return agentwire.NewError(agentwire.CodeUnavailable, errConnClosed)
	}
	r.out.AgentToProxy = m
	err := r.rpc.Send(&r.out)
	r.out.AgentToProxy = nil
	if err != nil {
		return agentwire.NewError(agentwire.CodeUnavailable, err)
	}
	return nil
}

// Release takes back an answered event for the next one of its kind; safe
// to call from any goroutine, concurrently with Recv.
func (r *rpcStream) Release(m *agentv2.ProxyToAgent) { releaseEnvelope(m) }
