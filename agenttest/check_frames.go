package agenttest

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// malformedPayload claims a 127-byte request_headers field and carries
// four: no protobuf decoder accepts it.
var malformedPayload = []byte{0x12, 0x7f, 0xde, 0xad, 0xbe, 0xef}

// unknownFrameType is a frame type no protocol version defines.
const unknownFrameType agentv2.FrameType = 0x7e

// rawSession dials the agent's socket and handshakes by hand.
func (s *suite) rawSession(ctx context.Context) (*rawConn, error) {
	c, err := dialRaw(ctx, s.socket)
	if err != nil {
		return nil, err
	}
	if _, err := c.handshake(); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// expectClose waits, a bounded time, for the agent to close c.
func expectClose(ctx context.Context, c *rawConn) error {
	wctx, cancel := context.WithTimeout(ctx, waitCloseAfter)
	defer cancel()
	stop := context.AfterFunc(wctx, func() { _ = c.nc.SetReadDeadline(time.Now()) })
	defer stop()
	return c.waitClosed(wctx)
}

// stillServes checks that a new connection is served after a bad one.
func (s *suite) stillServes(ctx context.Context) error {
	c, err := s.dial(ctx)
	if err != nil {
		return fmt.Errorf("new connection afterwards: %w", err)
	}
	defer closeConn(c)
	if _, err := sendMatched(ctx, c, s.requestHeaders(s.corrID(), "GET", s.cfg.allowPath)); err != nil {
		return fmt.Errorf("request on a new connection afterwards: %w", err)
	}
	return nil
}

// checkMalformed sends a request_headers frame whose payload is not
// protobuf: the agent must close that connection and keep serving others.
func checkMalformed(ctx context.Context, s *suite) (string, error) {
	c, err := s.rawSession(ctx)
	if err != nil {
		return "", err
	}
	defer c.close()
	if err := c.writeFrame(agentv2.ProxyToAgentFrameRequestHeaders, malformedPayload); err != nil {
		return "", fmt.Errorf("writing the malformed frame: %w", err)
	}
	if err := expectClose(ctx, c); err != nil {
		return "", fmt.Errorf("after a malformed frame: %w", err)
	}
	if err := s.stillServes(ctx); err != nil {
		return "", err
	}
	return "connection closed; a new connection is served", nil
}

// checkOversize announces a frame one byte over the agent's limit: the
// agent must close the connection without waiting for the payload.
func checkOversize(ctx context.Context, s *suite) (string, error) {
	c, err := s.rawSession(ctx)
	if err != nil {
		return "", err
	}
	defer c.close()
	announced := s.cfg.maxFrameSize + 1
	hdr := make([]byte, agentv2.FrameHeaderSize+8)
	binary.BigEndian.PutUint32(hdr, uint32(announced))
	hdr[4] = byte(agentv2.ProxyToAgentFrameRequestBodyChunk)
	if _, err := c.nc.Write(hdr); err != nil {
		return "", fmt.Errorf("writing the frame header: %w", err)
	}
	if err := expectClose(ctx, c); err != nil {
		return "", fmt.Errorf("after a header announcing %d bytes: %w", announced, err)
	}
	if err := s.stillServes(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("frame of %d bytes announced: connection closed; a new connection is served", announced), nil
}

// checkUnknownType sends a frame of an undefined type followed by a
// request: the agent must skip the frame and answer the request.
func checkUnknownType(ctx context.Context, s *suite) (string, error) {
	c, err := s.rawSession(ctx)
	if err != nil {
		return "", err
	}
	defer c.close()
	corr := s.corrID()
	ev := s.requestHeaders(corr, "GET", s.cfg.allowPath)
	ev.EventId = 1
	// One write, so that an agent that drops the connection on the unknown
	// frame fails on the read below, not on a race with our second write.
	b := appendRawFrame(nil, unknownFrameType, []byte("from a newer proxy"))
	b, err = codec.AppendFrame(b, ev, 0)
	if err != nil {
		return "", err
	}
	if _, err := c.nc.Write(b); err != nil {
		return "", fmt.Errorf("writing a frame of type 0x%02x and a request: %w", uint8(unknownFrameType), err)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetReadDeadline(time.Now()) })
	defer stop()
	m, err := c.nextResponse()
	if err != nil {
		return "", fmt.Errorf("request after a frame of type 0x%02x: %w", uint8(unknownFrameType), err)
	}
	if got := m.GetResponse().GetCorrelationId(); got != corr {
		return "", fmt.Errorf("request after a frame of type 0x%02x answered with correlation id %q, want %q", uint8(unknownFrameType), got, corr)
	}
	if id := m.GetEventId(); id != 0 && id != ev.EventId {
		return "", fmt.Errorf("response carries event id %d, want %d", id, ev.EventId)
	}
	return fmt.Sprintf("frame type 0x%02x skipped; the next request was answered", uint8(unknownFrameType)), nil
}
