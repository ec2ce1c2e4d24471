package agenttest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// rawConn is a hand-driven framed connection: the frame checks write bytes
// no well-behaved proxy would. It is used by one goroutine.
type rawConn struct {
	nc   net.Conn
	r    *codec.Reader
	stop func() bool // ends the context watch
}

// dialRaw connects to the agent's socket. The connection is closed when ctx
// ends, which unblocks any read or write.
func dialRaw(ctx context.Context, path string) (*rawConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	return &rawConn{
		nc:   nc,
		r:    codec.NewReader(nc, 0),
		stop: context.AfterFunc(ctx, func() { _ = nc.Close() }),
	}, nil
}

func (c *rawConn) close() {
	c.stop()
	_ = c.nc.Close()
}

// handshake sends a version-2 handshake and expects a successful answer as
// the first frame.
func (c *rawConn) handshake() (*agentv2.HandshakeResponse, error) {
	req := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Handshake{Handshake: &agentv2.HandshakeRequest{
		SupportedVersions:  []uint32{transport.ProtocolVersion},
		ProxyId:            "agenttest",
		ProxyVersion:       "1",
		SupportedEncodings: []string{"protobuf"},
	}}}
	if err := c.send(req); err != nil {
		return nil, fmt.Errorf("sending handshake: %w", err)
	}
	var m agentv2.AgentToProxy
	if err := c.r.ReadAgentToProxy(&m); err != nil {
		return nil, fmt.Errorf("reading handshake response: %w", err)
	}
	hs := m.GetHandshake()
	switch {
	case hs == nil:
		return nil, fmt.Errorf("first frame is %s, want a handshake response", agentv2.AgentToProxyFrameName(m.FrameType()))
	case !hs.GetSuccess():
		return nil, fmt.Errorf("handshake rejected: %s", hs.GetError())
	}
	return hs, nil
}

func (c *rawConn) send(m *agentv2.ProxyToAgent) error {
	return codec.WriteFrameTo(c.nc, m, 0)
}

// writeFrame writes a frame of type t with payload as is.
func (c *rawConn) writeFrame(t agentv2.FrameType, payload []byte) error {
	_, err := c.nc.Write(appendRawFrame(nil, t, payload))
	return err
}

// appendRawFrame appends a frame of type t around payload, whatever it is.
func appendRawFrame(dst []byte, t agentv2.FrameType, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(1+len(payload)))
	dst = append(dst, byte(t))
	return append(dst, payload...)
}

// nextResponse reads frames until an AgentResponse arrives, skipping
// health, metrics, logs and frames of unknown types.
func (c *rawConn) nextResponse() (*agentv2.AgentToProxy, error) {
	for {
		var m agentv2.AgentToProxy
		if err := c.r.ReadAgentToProxy(&m); err != nil {
			if errors.Is(err, codec.ErrUnknownFrameType) {
				continue
			}
			return nil, err
		}
		if m.GetResponse() != nil {
			return &m, nil
		}
	}
}

// waitClosed reads until the agent closes the connection. It fails if the
// agent answers an event instead, or ctx ends first.
func (c *rawConn) waitClosed(ctx context.Context) error {
	for {
		var m agentv2.AgentToProxy
		err := c.r.ReadAgentToProxy(&m)
		switch {
		case err == nil:
			if r := m.GetResponse(); r != nil {
				return fmt.Errorf("agent answered (correlation id %q) instead of closing the connection", r.GetCorrelationId())
			}
			continue
		case errors.Is(err, codec.ErrUnknownFrameType):
			continue
		case ctx.Err() != nil || errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded):
			// We gave up waiting and closed or timed out our end.
			return errors.New("connection still open: the agent did not close it")
		case closedByPeer(err):
			return nil
		}
		return fmt.Errorf("reading: %w", err)
	}
}

// closedByPeer reports whether a read error means the peer closed or reset
// the connection (possibly in the middle of a frame).
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, codec.ErrTruncated) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// waitCloseAfter bounds how long a frame check waits for the agent to
// close a connection it should drop.
const waitCloseAfter = 3 * time.Second
