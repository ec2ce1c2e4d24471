package pool

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// CancelAll tells every connection of agent agentID to abandon every
// request it holds (req, whose correlation id must be empty, goes to each:
// see [transport.Conn.Cancel]) and fails the calls waiting on them with
// Canceled. The requests' pins are marked lost: their later events fail
// with FailedPrecondition ([ErrAffinityLost]). A request that opens while
// CancelAll runs may be cancelled too. It returns the ids of the
// connections told; the connections it could not tell make the error.
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
