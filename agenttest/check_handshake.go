package agenttest

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// checkHandshake connects and checks the capabilities the agent declares.
func checkHandshake(ctx context.Context, s *suite) (string, error) {
	c, err := s.conn(ctx)
	if err != nil {
		return "", err
	}
	caps := c.Capabilities()
	var problems []string
	if v := caps.GetProtocolVersion(); v != transport.ProtocolVersion {
		problems = append(problems, fmt.Sprintf("capabilities.protocol_version is %d, want %d", v, transport.ProtocolVersion))
	}
	if caps.GetAgentId() == "" {
		problems = append(problems, "capabilities.agent_id is empty")
	}
	if len(problems) > 0 {
		return "", errors.New(strings.Join(problems, "; "))
	}
	return describeCaps(caps), nil
}

// describeCaps summarises capabilities for the table.
func describeCaps(caps *agentv2.AgentCapabilities) string {
	var b strings.Builder
	fmt.Fprintf(&b, "agent %q", caps.GetAgentId())
	if n := caps.GetName(); n != "" {
		fmt.Fprintf(&b, " (%s", n)
		if v := caps.GetVersion(); v != "" {
			fmt.Fprintf(&b, " %s", v)
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, ", protocol %d, %d event types", caps.GetProtocolVersion(), len(caps.GetSupportedEvents()))
	f := caps.GetFeatures()
	feats := FeatureNames(f)
	if len(feats) > 0 {
		fmt.Fprintf(&b, ", features %s", strings.Join(feats, ","))
	}
	if n := caps.GetLimits().GetMaxConcurrency(); n > 0 {
		fmt.Fprintf(&b, ", max concurrency %d", n)
	}
	return b.String()
}

// unsupportedVersion is the only version the negotiation check offers.
const unsupportedVersion = 99

// checkUnsupportedVersion offers only version 99; the agent must answer
// success=false.
func checkUnsupportedVersion(ctx context.Context, s *suite) (string, error) {
	c, err := s.dial(ctx, transport.WithProtocolVersions(unsupportedVersion))
	if err == nil {
		v := c.Capabilities().GetProtocolVersion()
		closeConn(c)
		return "", fmt.Errorf("handshake offering only version %d succeeded (agent chose %d); want success=false", unsupportedVersion, v)
	}
	switch {
	case errors.Is(err, transport.ErrHandshakeRejected):
		var e *agentwire.Error
		msg := err.Error()
		if errors.As(err, &e) {
			msg = e.Message()
		}
		return "rejected: " + msg, nil
	case errors.Is(err, transport.ErrIncompatibleVersion):
		return "", fmt.Errorf("agent accepted a handshake offering only version %d: %w", unsupportedVersion, err)
	}
	return "", fmt.Errorf("want a handshake response with success=false, got: %w", err)
}
