package agenttest

import (
	"context"
	"fmt"
	"strings"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// checkBlock sends a request for the block path and expects a block.
func checkBlock(ctx context.Context, s *suite) (string, error) {
	c, err := s.conn(ctx)
	if err != nil {
		return "", err
	}
	resp, err := sendMatched(ctx, c, s.requestHeaders(s.corrID(), "GET", s.cfg.blockPath))
	if err != nil {
		return "", err
	}
	if st := resp.GetError(); st != nil {
		return "", fmt.Errorf("GET %s: agent reported an error instead of a decision: %s: %s", s.cfg.blockPath, agentwire.Code(st.GetCode()), st.GetMessage())
	}
	b := resp.GetBlock()
	if b == nil {
		return "", fmt.Errorf("GET %s: want a block, got %s", s.cfg.blockPath, describe(resp))
	}
	switch st := b.GetStatus(); {
	case s.cfg.blockStatus != 0 && st != s.cfg.blockStatus:
		return "", fmt.Errorf("GET %s: blocked with status %d, want %d", s.cfg.blockPath, st, s.cfg.blockStatus)
	case s.cfg.blockStatus == 0 && (st < 400 || st > 599):
		return "", fmt.Errorf("GET %s: blocked with status %d, want 400-599", s.cfg.blockPath, st)
	}
	return fmt.Sprintf("GET %s: %s", s.cfg.blockPath, describe(resp)), nil
}

// checkAllow sends a request for the allow path and expects an allow (an
// absent decision counts as allow, as plain Sentinel agents send it).
func checkAllow(ctx context.Context, s *suite) (string, error) {
	c, err := s.conn(ctx)
	if err != nil {
		return "", err
	}
	resp, err := sendMatched(ctx, c, s.requestHeaders(s.corrID(), "GET", s.cfg.allowPath))
	if err != nil {
		return "", err
	}
	if st := resp.GetError(); st != nil {
		return "", fmt.Errorf("GET %s: agent reported an error instead of a decision: %s: %s", s.cfg.allowPath, agentwire.Code(st.GetCode()), st.GetMessage())
	}
	switch resp.GetDecision().(type) {
	case *agentv2.AgentResponse_Allow, nil:
	default:
		return "", fmt.Errorf("GET %s: want allow, got %s", s.cfg.allowPath, describe(resp))
	}
	return fmt.Sprintf("GET %s: %s", s.cfg.allowPath, describe(resp)), nil
}

// checkMutation runs an allowed request through request and response
// headers and looks for the configured header among the mutations.
func checkMutation(ctx context.Context, s *suite) (string, error) {
	c, err := s.conn(ctx)
	if err != nil {
		return "", err
	}
	corr := s.corrID()
	var ops []string
	found := false
	for _, ev := range []*agentv2.ProxyToAgent{
		s.requestHeaders(corr, "GET", s.cfg.allowPath),
		s.event(kindResponseHeaders, corr, 0),
	} {
		resp, err := sendMatched(ctx, c, ev)
		if err != nil {
			return "", err
		}
		ops = append(ops, headerOps(resp)...)
		if name := s.cfg.mutationHeader; name != "" && setsHeader(resp, name) {
			found = true
		}
	}
	seen := "no header mutations"
	if len(ops) > 0 {
		seen = "mutations " + strings.Join(ops, " ")
	}
	switch {
	case s.cfg.mutationHeader == "":
		return "", skip("no mutation header configured; saw %s", seen)
	case !found:
		return "", fmt.Errorf("allowed request: want header %q set or added, saw %s", s.cfg.mutationHeader, seen)
	}
	return seen, nil
}
