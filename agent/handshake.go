package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire"
)

// errHalfClosed: the proxy closed its sending side; the session answers
// what it has, then ends.
var errHalfClosed = errors.New("agent: proxy closed its side of the stream")

// errConnClosed: the connection was closed, by the peer or the server.
var errConnClosed = errors.New("agent: connection closed")

// errProtocol marks errors caused by a peer breaking the protocol.
var errProtocol = errors.New("agent: protocol violation")

func protocolError(format string, args ...any) error {
	return agentwire.NewError(agentwire.CodeInternal, fmt.Errorf("%w: "+format, append([]any{errProtocol}, args...)...))
}

// serve runs one connection, handshake then session, and logs why it
// ended unless it ended normally (then it returns nil).
func (srv *Server) serve(ctx context.Context, st stream) error {
	err := srv.serveStream(ctx, st)
	if err != nil {
		srv.cfg.logger.Warn("agent: connection closed", "error", err)
	}
	return err
}

func (srv *Server) serveStream(ctx context.Context, st stream) error {
	timer := time.AfterFunc(srv.cfg.handshakeTimeout, st.Abort)
	first, err := st.Recv()
	if !timer.Stop() {
		return agentwire.Errorf(agentwire.CodeDeadlineExceeded, "agent: no handshake within %v", srv.cfg.handshakeTimeout)
	}
	switch {
	case err != nil && endedNormally(err):
		return nil
	case errors.Is(err, codec.ErrUnknownFrameType):
		return protocolError("first frame is not a handshake: %w", err)
	case err != nil:
		return err
	}
	hs := first.GetHandshake()
	if hs == nil {
		return protocolError("first message is %T, not a handshake", first.GetMessage())
	}
	interval := srv.cfg.healthInterval
	if ms := hs.GetHealthReportIntervalMs(); ms > 0 {
		interval = time.Duration(ms) * time.Millisecond
	}
	resp, rejected := srv.handshakeResponse(hs, interval, st)
	if err := st.Send(ctx, &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{Handshake: resp}}); err != nil {
		return err
	}
	if rejected != nil {
		return rejected
	}
	s := newSession(ctx, srv, st, hs, interval)
	if !srv.addSession(s) {
		s.end(agentwire.Errorf(agentwire.CodeUnavailable, "agent: server closed"))
		return nil
	}
	defer srv.removeSession(s)
	return s.run()
}

// endedNormally tells a connection closed by either side from one that
// broke.
func endedNormally(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, errConnClosed) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, wire.ErrWriterClosed)
}

// Capabilities returns what the agent declares in its handshake (with the
// default health interval), for example for a RegistrationRequest. The
// result is the caller's.
func (srv *Server) Capabilities() *agentv2.AgentCapabilities {
	return srv.capabilities(srv.cfg.healthInterval)
}

func (srv *Server) capabilities(interval time.Duration) *agentv2.AgentCapabilities {
	cfg := &srv.cfg
	has := func(e agentv2.EventType) bool { return slices.Contains(cfg.events, e) }
	return &agentv2.AgentCapabilities{
		ProtocolVersion: ProtocolVersion,
		AgentId:         cfg.agentID,
		Name:            cfg.name,
		Version:         cfg.version,
		SupportedEvents: slices.Clone(cfg.events),
		Features: &agentv2.AgentFeatures{
			StreamingBody:      has(agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK) || has(agentv2.EventType_EVENT_TYPE_RESPONSE_BODY_CHUNK),
			Websocket:          has(agentv2.EventType_EVENT_TYPE_WEBSOCKET_FRAME),
			Guardrails:         has(agentv2.EventType_EVENT_TYPE_GUARDRAIL_INSPECT),
			ConfigPush:         has(agentv2.EventType_EVENT_TYPE_CONFIGURE),
			MetricsExport:      srv.metrics != nil,
			ConcurrentRequests: uint32(cfg.maxConcurrency),
			Cancellation:       true,
			FlowControl:        true,
			HealthReporting:    true,
			EchoesEventId:      true,
		},
		Limits: &agentv2.AgentLimits{
			MaxBodySize:    uint64(cfg.maxFrameSize),
			MaxConcurrency: uint32(cfg.maxConcurrency),
		},
		HealthConfig: &agentv2.HealthConfig{
			ReportIntervalMs:   uint32(interval.Milliseconds()),
			IncludeLoadMetrics: true,
		},
	}
}

// encodingNegotiator is implemented by streams that choose their payload
// encoding from the proxy's offer (the framed stream: protobuf, or the
// reference's msgpack or json); other streams speak protobuf.
type encodingNegotiator interface {
	negotiate(offered []string) (enc string, ok bool)
}

// handshakeResponse answers a handshake received on st (nil: none yet);
// rejected is non-nil when the agent cannot serve the proxy.
func (srv *Server) handshakeResponse(hs *agentv2.HandshakeRequest, interval time.Duration, st stream) (resp *agentv2.HandshakeResponse, rejected error) {
	enc, encOK := protobufEncoding(hs.GetSupportedEncodings())
	if n, ok := st.(encodingNegotiator); ok {
		enc, encOK = n.negotiate(hs.GetSupportedEncodings())
	}
	resp = &agentv2.HandshakeResponse{ProtocolVersion: ProtocolVersion, Capabilities: srv.capabilities(interval), Success: true, Encoding: enc}
	var problem string
	switch {
	case !slices.Contains(hs.GetSupportedVersions(), ProtocolVersion):
		problem = fmt.Sprintf("unsupported protocol versions %v: this agent speaks version %d", hs.GetSupportedVersions(), ProtocolVersion)
	case !encOK:
		problem = fmt.Sprintf("unsupported encodings %q: this agent speaks \"protobuf\"", hs.GetSupportedEncodings())
	default:
		return resp, nil
	}
	resp.Success = false
	resp.Error = &problem
	return resp, agentwire.Errorf(agentwire.CodeUnimplemented, "agent: handshake rejected: %s", problem)
}
