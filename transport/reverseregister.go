package transport

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire/refenc"
)

// rejection is a registration refusal: the code and reason told to the
// agent, and detail for the proxy's own reporting. cause, if set, is the
// error reason was taken from, which err wraps instead.
type rejection struct {
	code          agentwire.Code
	reason        string
	detail, cause error
}

func (r *rejection) err() error {
	switch {
	case r.cause != nil:
		return agentwire.Errorf(r.code, "registration rejected: %w", r.cause)
	case r.detail != nil:
		return agentwire.Errorf(r.code, "registration rejected: %s: %w", r.reason, r.detail)
	}
	return agentwire.Errorf(r.code, "registration rejected: %s", r.reason)
}

// capacity reports a refusal for a connection limit, which comes after
// authentication and is not held against the peer ([WithPeerCooldown]).
func (r *rejection) capacity() bool { return r.code == agentwire.CodeResourceExhausted }

// registration is one accepted connection on its way through registration
// and the handshake. Only the registration's goroutine uses it.
type registration struct {
	l    *ReverseListener
	nc   net.Conn
	peer net.Addr
	// agentID, reg and connID are set as the steps learn them.
	agentID string
	reg     *agentv2.RegistrationRequest
	connID  string
	// held is the room reserved for the connection, given back unless
	// the connection is admitted.
	held *slot
	// peerFault: a failure counts against the peer's address.
	peerFault bool
	// ref: the agent registered the reference's way (JSON, reverse.rs).
	ref bool
	// handedOver: nc belongs to a Conn now.
	handedOver bool
}

// register runs one connection through registration and the handshake.
// Each step returns the error that refuses the connection, fail reports
// it, and finish is the one cleanup, whatever the outcome.
func (l *ReverseListener) register(nc net.Conn) {
	r := &registration{l: l, nc: nc, peer: nc.RemoteAddr(), peerFault: true}
	defer r.finish()
	c, err := r.run()
	if err == nil {
		err = r.admit(c)
	}
	if err != nil {
		r.fail(err)
	}
}

// run takes the connection from TLS to a handshaken Conn, in order, within
// the registration timeout.
func (r *registration) run() (Conn, error) {
	ctx, cancel := context.WithTimeout(r.l.ctx, r.l.cfg.timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	_ = r.nc.SetDeadline(deadline)
	// Closing the listener or the deadline ends blocked reads and writes.
	unblock := context.AfterFunc(ctx, func() { _ = r.nc.SetDeadline(time.Unix(1, 0)) })
	defer unblock()
	ctx, err := r.tlsHandshake(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.read(ctx); err != nil {
		return nil, err
	}
	if err := r.accept(ctx, unblock); err != nil {
		return nil, err
	}
	return r.handshake()
}

// read reads and validates the registration, reserving room under the
// agent's connection cap; a refusal is answered before it is returned.
func (r *registration) read(ctx context.Context) error {
	l := r.l
	reg, rej, err := r.readRegistration(ctx)
	if err != nil {
		return err
	}
	if rej == nil {
		r.reg, r.agentID = reg, reg.GetAgentId()
		r.held, rej = l.validate(ctx, reg, r.peer)
	}
	if rej == nil {
		return nil
	}
	r.peerFault = !rej.capacity()
	// Best effort: the client may already be gone.
	text := rej.code.String() + ": " + rej.reason
	_ = l.writeResponse(r.nc, &agentv2.RegistrationResponse{Error: &text, Code: uint32(rej.code)}, r.ref)
	return rej.err()
}

// accept answers the registration and lifts the registration deadline.
// unblock stops the deadline's watch; false means it already fired.
func (r *registration) accept(ctx context.Context, unblock func() bool) error {
	l := r.l
	var id [16]byte
	if _, err := l.cfg.randRead(id[:]); err != nil {
		return agentwire.NewError(agentwire.CodeInternal, fmt.Errorf("connection id: %w", err))
	}
	r.connID = hex.EncodeToString(id[:])
	resp := &agentv2.RegistrationResponse{Accepted: true, ConnectionId: r.connID}
	if l.cfg.configFor != nil {
		if js := l.cfg.configFor(r.reg); js != "" {
			resp.ConfigJson = &js
		}
	}
	if err := l.writeResponse(r.nc, resp, r.ref); err != nil {
		return l.ioErr(ctx, "registration answer", err, agentwire.CodeUnavailable)
	}
	if !unblock() || ctx.Err() != nil {
		return l.ioErr(ctx, "registration answer", ctx.Err(), agentwire.CodeUnavailable)
	}
	_ = r.nc.SetDeadline(time.Time{})
	return nil
}

// handshake runs the framed protocol, exactly as over a Unix socket.
// Closing the listener cancels l.ctx, which aborts it.
func (r *registration) handshake() (Conn, error) {
	l := r.l
	opts := l.cfg.connOpts
	if f := l.cfg.connOptsFor; f != nil {
		opts = append(append([]Option(nil), opts...), f(r.agentID, r.reg)...)
	}
	var c Conn
	var err error
	if r.ref {
		c, err = newRefReverseConn(l.ctx, r.nc, r.reg, opts)
	} else {
		c, err = NewFramedConn(l.ctx, r.nc, TransportReverse, opts...)
	}
	if err != nil && l.ctx.Err() != nil {
		err = agentwire.Errorf(agentwire.CodeCanceled, "handshake: %w", ErrListenerClosed)
	}
	return c, err
}

// admit hands the handshaken c to its slot's receiver and has it watched
// until it ends, unless the listener closed meanwhile.
func (r *registration) admit(c Conn) error {
	l := r.l
	r.handedOver = true // c owns nc from here on
	l.mu.Lock()
	if l.isClosed {
		l.mu.Unlock()
		_ = c.Close(context.Background())
		return agentwire.Errorf(agentwire.CodeCanceled, "after handshake: %w", ErrListenerClosed)
	}
	l.live[c] = struct{}{}
	l.admitted++
	l.wg.Add(1)
	l.mu.Unlock()
	s := r.held
	r.held = nil
	go l.watch(c, s.ended)
	l.peerResult(peerHost(r.peer), true)
	l.conn.logger.LogAttrs(context.Background(), slog.LevelDebug, "reverse connection admitted",
		slog.String("agent_id", r.agentID), slog.String("connection_id", r.connID), slog.String("peer", addrString(r.peer)))
	s.admit(c)
	return nil
}

// fail refuses the connection. It frees the slot before reporting, so that
// whoever hears of the rejection may register again at once.
func (r *registration) fail(err error) {
	l := r.l
	r.releaseHeld()
	l.mu.Lock()
	l.rejected++
	l.mu.Unlock()
	if l.ctx.Err() == nil && r.peerFault {
		l.peerResult(peerHost(r.peer), false)
	}
	l.report(r.peer, r.agentID, err)
}

func (r *registration) releaseHeld() {
	if r.held != nil {
		r.held.release()
		r.held = nil
	}
}

// finish frees the slot if still held, the pending count, and nc unless a
// Conn took it.
func (r *registration) finish() {
	r.releaseHeld()
	r.l.mu.Lock()
	r.l.pending--
	r.l.mu.Unlock()
	if !r.handedOver {
		_ = r.nc.Close()
	}
}

// ioErr classifies an I/O failure during registration.
func (l *ReverseListener) ioErr(ctx context.Context, what string, err error, code agentwire.Code) error {
	var ne net.Error
	switch {
	case l.ctx.Err() != nil:
		return agentwire.Errorf(agentwire.CodeCanceled, "%s: %w", what, ErrListenerClosed)
	case ctx.Err() != nil, errors.As(err, &ne) && ne.Timeout():
		return agentwire.Errorf(agentwire.CodeDeadlineExceeded, "%s: no registration within %v", what, l.cfg.timeout)
	}
	return agentwire.NewError(code, fmt.Errorf("%s: %w", what, err))
}

// readRegistration reads exactly one frame, consuming nothing the framed
// connection needs after it: ours (0x50) or the reference's (0x01, JSON).
// A frame that is no valid registration is a rejection (answered); a
// transport failure an error (just closed).
func (r *registration) readRegistration(ctx context.Context) (*agentv2.RegistrationRequest, *rejection, error) {
	l, nc := r.l, r.nc
	var hdr [agentv2.FrameHeaderSize]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		return nil, nil, l.ioErr(ctx, "registration", err, agentwire.CodeUnavailable)
	}
	n := int(binary.BigEndian.Uint32(hdr[:4]))
	t := agentv2.FrameType(hdr[4])
	// A reference agent is answered in its dialect, refusals included.
	r.ref = t == refRegistrationFrame
	var reason string
	switch {
	case n == 0:
		reason = "zero-length frame"
	case n > MaxRegistrationFrame:
		reason = fmt.Sprintf("registration frame of %d bytes exceeds %d", n, MaxRegistrationFrame)
	case t != agentv2.AgentToProxyFrameRegistration && t != refRegistrationFrame:
		reason = fmt.Sprintf("first frame must be a registration, got type 0x%02x", uint8(t))
	}
	if reason != "" {
		return nil, &rejection{code: agentwire.CodeInvalidArgument, reason: reason}, nil
	}
	payload := make([]byte, n-1)
	if _, err := io.ReadFull(nc, payload); err != nil {
		return nil, nil, l.ioErr(ctx, "registration", err, agentwire.CodeUnavailable)
	}
	if r.ref {
		reg, err := refenc.RegistrationIn(payload)
		if err != nil {
			return nil, &rejection{code: agentwire.CodeInvalidArgument, reason: "malformed registration", detail: err}, nil
		}
		return reg, nil, nil
	}
	var msg agentv2.AgentToProxy
	if err := codec.Decode(&msg, t, payload, agentv2.IsAgentToProxyFrame, false); err != nil {
		return nil, &rejection{code: agentwire.CodeInvalidArgument, reason: "malformed registration", detail: err}, nil
	}
	return msg.GetRegistration(), nil, nil
}

// writeResponse answers a registration in the proxy's name, the
// reference's way if ref.
func (l *ReverseListener) writeResponse(nc net.Conn, resp *agentv2.RegistrationResponse, ref bool) error {
	resp.ProxyId, resp.ProxyVersion = l.conn.proxyID, l.conn.proxyVersion
	if ref {
		b, err := refenc.AppendRegistrationResponse(nil, resp)
		if err == nil {
			_, err = nc.Write(b)
		}
		return err
	}
	msg := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RegistrationResponse{RegistrationResponse: resp}}
	return codec.WriteFrameTo(nc, msg, 0)
}
