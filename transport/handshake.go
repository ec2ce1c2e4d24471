package transport

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// handshake offers the proxy's versions and learns the agent's
// capabilities, which decide how responses are matched.
func (s *session) handshake(ctx context.Context) error {
	// If ctx ends while we wait, closing the wire unblocks recv.
	expired := context.AfterFunc(ctx, func() { _ = s.w.close() })
	defer expired()
	req := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Handshake{Handshake: &agentv2.HandshakeRequest{
		SupportedVersions:      s.cfg.versions,
		ProxyId:                s.cfg.proxyID,
		ProxyVersion:           s.cfg.proxyVersion,
		ConfigJson:             s.cfg.configJSON,
		SupportedEncodings:     []string{"protobuf"},
		HealthReportIntervalMs: uint32(s.cfg.healthInterval / time.Millisecond),
	}}}
	if err := s.w.send(ctx, req); err != nil {
		return handshakeErr(ctx, err)
	}
	var msg agentv2.AgentToProxy
	err := s.w.recv(&msg)
	for ; errors.Is(err, codec.ErrUnknownFrameType); err = s.w.recv(&msg) {
		s.unknownFrames.Add(1)
	}
	if err != nil {
		return handshakeErr(ctx, err)
	}
	hs := msg.GetHandshake()
	switch {
	case hs == nil:
		return agentwire.Errorf(agentwire.CodeInternal, "%w: expected a handshake response, got %v", ErrProtocol, msg.FrameType())
	case !hs.GetSuccess():
		return agentwire.Errorf(agentwire.CodeFailedPrecondition, "%w: %s", ErrHandshakeRejected, hs.GetError())
	case !slices.Contains(s.cfg.versions, hs.GetProtocolVersion()):
		return agentwire.Errorf(agentwire.CodeFailedPrecondition, "%w: agent chose version %d, offered %v",
			ErrIncompatibleVersion, hs.GetProtocolVersion(), s.cfg.versions)
	case hs.GetEncoding() != "" && hs.GetEncoding() != "protobuf":
		return agentwire.Errorf(agentwire.CodeFailedPrecondition, "%w: agent chose encoding %q", ErrIncompatibleVersion, hs.GetEncoding())
	}
	s.caps = hs.GetCapabilities()
	if s.caps == nil {
		s.caps = &agentv2.AgentCapabilities{ProtocolVersion: hs.GetProtocolVersion()}
	}
	if !s.caps.GetFeatures().GetEchoesEventId() {
		s.byCorr = make(map[string][]*call)
	}
	return nil
}

func handshakeErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return agentwire.NewError(agentwire.CodeDeadlineExceeded, fmt.Errorf("handshake: %w", ctx.Err()))
	}
	return agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("handshake: %w", err))
}
