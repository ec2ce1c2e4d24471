package pool

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// TestReroute: an interceptor moves a request to another connection
// (PinAgain, Exclude), sends without pinning (PinNone) and pins a winner
// (Pin); CancelOn reaches a given connection.
func TestReroute(t *testing.T) {
	t.Parallel()
	var (
		rr     *Reroute // set for the next call
		conn   string   // where the last call went
		routed string   // what Routed heard
		miss   bool
	)
	p := newTestPool(t, WithInterceptors(InterceptorFunc(func(next SendFunc) SendFunc {
		return func(ctx context.Context, c *Call) (*agentv2.AgentResponse, error) {
			c.Reroute, rr = rr, nil
			resp, err := next(ctx, c)
			conn, miss = c.ConnID, c.AffinityMiss
			return resp, err
		}
	})))
	for range 2 {
		require.NoError(t, p.AdoptConn("waf", newMemConn()))
	}
	ctx := testCtx(t)
	send := func(ev *agentv2.ProxyToAgent) string {
		t.Helper()
		_, err := p.Send(ctx, "waf", ev)
		require.NoError(t, err)
		return conn
	}
	first := send(headers("r1"))
	assert.Equal(t, first, send(requestBody("r1", 0, false)), "follows the pin")

	rr = &Reroute{Pin: PinAgain, Exclude: first, Routed: func(id string) { routed = id }}
	second := send(requestBody("r1", 1, false))
	assert.NotEqual(t, first, second, "excluded")
	assert.Equal(t, second, routed)
	assert.Equal(t, second, send(requestBody("r1", 2, false)), "pinned again")

	require.NoError(t, p.Pin("waf", "r1", first))
	assert.Equal(t, first, send(requestBody("r1", 3, false)), "Pin moves the request")
	require.NoError(t, p.CancelOn(ctx, "waf", second, &agentv2.CancelRequest{CorrelationId: "r1", Reason: agentv2.CancelReason_CANCEL_REASON_MANUAL}))
	assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(p.CancelOn(ctx, "waf", second, &agentv2.CancelRequest{})))
	err := p.CancelOn(ctx, "waf", "nope", &agentv2.CancelRequest{CorrelationId: "r1"})
	assert.ErrorIs(t, err, ErrNoConnAvailable)
	assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err))
	assert.Error(t, p.Pin("waf", "r1", "nope"))

	rr = &Reroute{Pin: PinNone}
	send(headers("r2"))
	send(requestBody("r2", 0, false))
	assert.True(t, miss, "PinNone pins nothing")

	// A PinNone attempt that ends its request (a hedge's late block) leaves
	// the pin of the attempt that won alone.
	blocking := newMemConn()
	blocking.resp = &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Block{Block: &agentv2.BlockDecision{Status: 403}}}
	require.NoError(t, p.AdoptConn("blk", blocking))
	require.NoError(t, p.AdoptConn("blk", newMemConn()))
	var winner string
	for _, sc := range stats(t, p, "blk").Conns {
		if sc.ID != "" && !strings.HasSuffix(sc.ID, "/1") {
			winner = sc.ID
		}
	}
	require.NoError(t, p.Pin("blk", "r3", winner))
	for range 2 {
		rr = &Reroute{Pin: PinNone}
		_, err := p.Send(ctx, "blk", headers("r3"))
		require.NoError(t, err)
	}
	_, err = p.Send(ctx, "blk", requestBody("r3", 0, false))
	require.NoError(t, err)
	assert.False(t, miss, "still pinned")
	assert.Equal(t, winner, conn)
}
