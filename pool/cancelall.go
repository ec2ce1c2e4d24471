package pool

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// CancelAll sends req, whose correlation id must be empty, to every
// connection of agent agentID: each abandons every request it holds and
// fails their calls with Canceled (see [transport.Conn.Cancel]). Their
// later events fail with FailedPrecondition ([ErrAffinityLost]); requests
// opening meanwhile may be cancelled too. It returns the connections told;
// those it could not tell make the error.
func (p *Pool) CancelAll(ctx context.Context, agentID string, req *agentv2.CancelRequest) ([]string, error) {
	a := p.lookup(agentID)
	if a == nil {
		return nil, unknownAgent(agentID)
	}
	if req.GetCorrelationId() != "" {
		return nil, agentwire.Errorf(agentwire.CodeInvalidArgument, "pool: CancelAll with correlation id %q (Cancel cancels one request)", req.GetCorrelationId())
	}
	var (
		told []string
		errs []error
	)
	for _, sc := range a.connList() {
		if sc.gone() {
			continue
		}
		if err := sc.conn.Cancel(ctx, req); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sc.id, err))
			continue
		}
		told = append(told, sc.id)
		a.aff.MarkLost(sc)
	}
	if len(errs) > 0 {
		return told, agentwire.NewError(agentwire.CodeOf(errs[0]),
			fmt.Errorf("pool: cancelling every request of agent %q: %w", a.id, errors.Join(errs...)))
	}
	return told, nil
}
