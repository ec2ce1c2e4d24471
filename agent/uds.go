package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire"
)

// flushTimeout bounds how long a closing framed connection waits for its
// last frames to reach the socket.
const flushTimeout = 5 * time.Second

// ListenUnix creates a Unix socket listener at path for [Server.ServeUnix],
// with permission [DefaultSocketMode] (0600) or [WithSocketMode]'s before
// any peer can connect. A leftover socket file that refuses connections is
// replaced; any other file, or a socket in use or that cannot be probed,
// makes ListenUnix fail. A path too long for a socket address is
// InvalidArgument. Closing the listener removes the socket file.
func (srv *Server) ListenUnix(path string, opts ...UnixOption) (net.Listener, error) {
	cfg := unixConfig{mode: DefaultSocketMode}
	for _, o := range opts {
		o.applyUnix(&cfg)
	}
	ln, err := wire.ListenUnix(context.Background(), path, cfg.mode)
	if err != nil {
		return nil, err
	}
	return ln, nil
}

// ServeUnix accepts framed connections on ln (from [Server.ListenUnix] or
// any stream listener) and serves each on its own goroutine until ctx ends
// or the server shuts down; it returns nil then, and the accept error
// otherwise. With [WithAllowedUIDs], peers running as other users are
// closed at once. Cancelling ctx also closes the connections ServeUnix
// accepted; after Shutdown or Close, the server finishes them.
func (srv *Server) ServeUnix(ctx context.Context, ln net.Listener) error {
	if !srv.addListener(ln) {
		_ = ln.Close()
		return nil
	}
	defer srv.removeListener(ln)
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				srv.cfg.logger.Warn("agent: accept failed; retrying", "error", err, "backoff", backoff)
				select {
				case <-time.After(backoff):
					continue
				case <-ctx.Done():
					return nil
				}
			}
			return agentwire.NewError(agentwire.CodeUnavailable, err)
		}
		backoff = 0
		if err := srv.checkPeer(c); err != nil {
			srv.cfg.logger.Warn("agent: refused connection", "error", err)
			_ = c.Close()
			continue
		}
		if !srv.goTracked(func() { _ = srv.ServeConn(ctx, c) }) {
			_ = c.Close()
			return nil
		}
	}
}

// checkPeer enforces WithAllowedUIDs.
func (srv *Server) checkPeer(c net.Conn) error {
	if len(srv.cfg.allowedUIDs) == 0 {
		return nil
	}
	uid, err := peerUID(c)
	if err != nil {
		return agentwire.Errorf(agentwire.CodePermissionDenied, "agent: cannot check the peer's uid: %w", err)
	}
	if !slices.Contains(srv.cfg.allowedUIDs, uid) {
		return agentwire.Errorf(agentwire.CodePermissionDenied, "agent: peer uid %d is not allowed", uid)
	}
	return nil
}

// ServeConn serves one established framed connection (accepted by
// ServeUnix, or dialled and registered by the agent) until it ends, ctx
// ends, or the server closes it, then closes conn. The next frame on conn
// must be the proxy's handshake (a caller that buffered reads must pass a
// conn returning the buffered bytes first). ServeConn returns nil when the
// connection ended normally and the reason otherwise (also logged).
//
// A proxy speaking the reference's Unix-socket protocol (a JSON handshake,
// then JSON or MessagePack payloads) is served too, in the encoding it
// prefers; handlers see the same messages either way.
func (srv *Server) ServeConn(ctx context.Context, conn net.Conn) error {
	return srv.serveConn(ctx, conn, nil)
}

// serveConn is ServeConn; ref, if not nil, starts the connection in the
// reference protocol (a reference reverse connection).
func (srv *Server) serveConn(ctx context.Context, conn net.Conn, ref *refState) error {
	fs := newFramedStream(conn, srv.cfg.maxFrameSize)
	fs.ref, fs.sniffed = ref, ref != nil
	if !srv.track(fs) {
		_ = conn.Close()
		return errServerClosed()
	}
	defer srv.untrack(fs)
	wctx, stopWriter := context.WithCancel(context.Background())
	go func() {
		defer close(fs.runDone)
		if err := fs.Run(wctx); err != nil {
			fs.Abort()
		}
	}()
	stop := context.AfterFunc(ctx, fs.Abort)
	err := srv.serve(ctx, fs)
	stop()
	fctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	fs.flush(fctx)
	cancel()
	stopWriter()
	<-fs.runDone
	_ = conn.Close()
	return err
}

// framedStream is a framed connection: one reader (the session's) and a
// batching writer, which a closing connection flushes for its last frames.
type framedStream struct {
	*wire.Framed
	runDone chan struct{} // closed when the writer's Run returned
	aborted atomic.Bool
	// Only the session's reader uses the following.
	in  frameTarget // the decoder
	tee teeReader   // conn as r reads it
	// borrow: events decode straight from r's buffer (WithBorrowedEvents),
	// set once the handshake was read.
	borrow bool
	// sniffed: the first frame was read; ref is then set if the proxy
	// speaks the reference protocol (refstream.go). Set before the session
	// starts, read-only afterwards.
	sniffed bool
	ref     *refState
}

var (
	_ stream      = (*framedStream)(nil)
	_ burstStream = (*framedStream)(nil)
)

func newFramedStream(conn net.Conn, maxFrame int) *framedStream {
	f := &framedStream{runDone: make(chan struct{})}
	f.tee.r = conn
	f.in.tee = &f.tee
	f.Framed = wire.NewFramed(conn, &f.tee, maxFrame, 0)
	return f
}

// Recv decodes each event in place into a recycled envelope whose strings
// and bytes alias the stream's copy of the read that brought the frame
// (teeReader), or the read buffer when borrowing. An idle connection pins
// no copy.
func (f *framedStream) Recv() (*agentv2.ProxyToAgent, error) {
	if f.ref != nil {
		return f.recvRef()
	}
	if f.tee.n == f.in.next {
		f.tee.idle()
	}
	t, payload, err := f.R.ReadFrame()
	if err == nil && !f.sniffed {
		f.sniffed = true
		if isRefHandshake(t, payload) {
			return f.startRef(payload)
		}
	}
	if err == nil {
		if f.borrow {
			f.in.lent = false
			f.in.t, f.in.payload = t, payload
		} else {
			f.in.at = f.in.next + agentv2.FrameHeaderSize
			f.in.next = f.in.at + int64(len(payload))
		}
		if err = codec.Decode(&f.in, t, payload, agentv2.IsProxyToAgentFrame, true); err == nil {
			m := f.in.m
			f.in.m = nil
			return m, nil
		}
	}
	if f.aborted.Load() {
		return nil, errConnClosed
	}
	return nil, err
}

// teeMaxRead bounds the reads teeReader copies: the fills of the frame
// reader's 32 KiB buffer. Larger reads go straight into the payload of a
// frame too large for that buffer, which is decoded from a copy of its own.
const teeMaxRead = 32 << 10

// teeReader copies each read from the connection into a chunk of its own
// (one allocation per read, not zeroed), so that events decoded from a
// payload the read brought whole alias it with no copy per frame. Only the
// stream's reader uses it.
type teeReader struct {
	r     io.Reader
	n     int64  // bytes read from r so far
	chunk []byte // the bytes of the last read, or nil
	off   int64  // where chunk starts in the stream
	// borrow: the stream decodes from the frame reader's buffer, so reads
	// are not copied (WithBorrowedEvents).
	borrow bool
}

func (t *teeReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.chunk = nil
		if !t.borrow && len(p) <= teeMaxRead {
			t.chunk, t.off = append([]byte(nil), p[:n]...), t.n
		}
		t.n += int64(n)
	}
	return n, err
}

// bytes returns the copy of stream bytes [at, at+n), or nil unless the
// last read brought them all.
func (t *teeReader) bytes(at int64, n int) []byte {
	i := at - t.off
	if t.chunk == nil || i < 0 || i+int64(n) > int64(len(t.chunk)) {
		return nil
	}
	return t.chunk[i : i+int64(n) : i+int64(n)]
}

// idle drops the last read's copy, once every frame in it was decoded.
func (t *teeReader) idle() { t.chunk = nil }

// frameTarget is what Recv has codec.Decode (frame type checks, error
// wrapping) decode into: a recycled envelope from the stream's copy of the
// frame, kept in m. Only the stream's reader uses it.
type frameTarget struct {
	tee  *teeReader
	at   int64 // where the payload starts in the stream
	next int64 // where the next frame starts in the stream
	m    *agentv2.ProxyToAgent
	// Borrowing streams: the last frame's type and payload (in the frame
	// reader's buffer), and whether m was decoded from that buffer.
	t       agentv2.FrameType
	payload []byte
	lent    bool
	borrow  bool
}

func (d *frameTarget) Reset() { d.m = nil }

// UnmarshalFrame never aliases payload, as UnmarshalFrameUnsafe.
func (d *frameTarget) UnmarshalFrame(t agentv2.FrameType, payload []byte) error {
	return d.UnmarshalFrameUnsafe(t, payload)
}

func (d *frameTarget) UnmarshalFrameUnsafe(t agentv2.FrameType, payload []byte) error {
	var m *agentv2.ProxyToAgent
	var err error
	if d.borrow {
		m, d.lent, err = decodeLent(t, payload)
	} else {
		m, err = decodeFrame(t, payload, d.tee.bytes(d.at, len(payload)))
	}
	d.m = m
	return err
}

// lend makes the stream's events borrow its read buffer from the next Recv
// on (WithBorrowedEvents). The session calls it once the handshake, which
// it keeps, was read.
func (f *framedStream) lend() {
	if f.ref != nil {
		return // reference events never alias the read buffer
	}
	f.borrow, f.in.borrow, f.tee.borrow = true, true, true
	f.tee.idle()
}

// own returns event m, which the last Recv returned, holding its own memory
// instead of the read buffer's, for events that wait for a worker while the
// reader reads on.
func (f *framedStream) own(m *agentv2.ProxyToAgent) (*agentv2.ProxyToAgent, error) {
	if !f.borrow || !f.in.lent {
		return m, nil
	}
	f.in.lent = false
	owned, err := decodeFrame(f.in.t, f.in.payload, bytes.Clone(f.in.payload))
	if err != nil {
		return m, err
	}
	releaseEnvelope(m)
	return owned, nil
}

// renew gives a borrowing stream's reader new buffers (codec.Reader.Renew)
// while a handler may still use an event in the old ones.
func (f *framedStream) renew() {
	if f.borrow {
		f.R.Renew()
	}
}

func (f *framedStream) Send(ctx context.Context, m *agentv2.AgentToProxy) error {
	return f.Write(ctx, f.out(m))
}

// SendBatched queues m for the writer's next batch (see
// wire.FrameWriter.WriteBatched).
func (f *framedStream) SendBatched(ctx context.Context, m *agentv2.AgentToProxy) error {
	return f.WriteBatched(ctx, f.out(m))
}

func (f *framedStream) CloseRecv() { _ = f.Conn.SetReadDeadline(time.Unix(1, 0)) }

func (f *framedStream) Abort() {
	f.aborted.Store(true)
	_ = f.Close()
}

// flush waits until every frame queued so far is written, the connection
// fails, or ctx ends.
func (f *framedStream) flush(ctx context.Context) {
	if f.aborted.Load() {
		return
	}
	_ = f.Flush(ctx)
}

func (f *framedStream) String() string { return fmt.Sprintf("framed %v", f.Conn.RemoteAddr()) }

// Release takes back an answered event for the next one of its kind; safe
// to call from any goroutine, concurrently with Recv.
func (f *framedStream) Release(m *agentv2.ProxyToAgent) { releaseEnvelope(m) }

// InputBuffered reports whether the next frame has arrived in full already.
func (f *framedStream) InputBuffered() bool { return f.R.FrameBuffered() }

// SendHeld queues m for the next ReleaseHeld.
func (f *framedStream) SendHeld(ctx context.Context, m *agentv2.AgentToProxy) error {
	return f.WriteHeld(ctx, f.out(m))
}

// ReleaseHeld writes the held answers with one system call.
func (f *framedStream) ReleaseHeld() error { return f.FrameWriter.ReleaseHeld() }
