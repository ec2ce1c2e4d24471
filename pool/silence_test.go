package pool

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// quietConn is a connection whose agent never answers: Send waits for its
// context. With chatty set, the agent sends something else (answers to
// other calls, health) while each call waits.
type quietConn struct {
	*memConn
	chatty bool
	recvd  atomic.Uint64
}

var _ transport.Receiver = (*quietConn)(nil)

func (c *quietConn) Send(ctx context.Context, _ *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error) {
	if c.chatty {
		c.recvd.Add(1)
	}
	<-ctx.Done()
	return nil, agentwire.WrapContextError(ctx.Err())
}

func (c *quietConn) Received() uint64 { return c.recvd.Load() }

// TestCallerGivesUpOnSilentAgent: a caller's deadline counts as a failure
// of its connection only when the call waited the liveness interval or
// more and the connection received nothing meanwhile; the breaker counts
// a silent connection once, however many calls gave up on it.
func TestCallerGivesUpOnSilentAgent(t *testing.T) {
	t.Parallel()
	const liveness = 30 * time.Millisecond
	for _, tc := range []struct {
		name     string
		chatty   bool
		deadline time.Duration
		opts     []Option
		failures int
	}{
		{name: "Silent", deadline: 80 * time.Millisecond, failures: 2},
		{name: "AnswersOthers", chatty: true, deadline: 80 * time.Millisecond},
		{name: "CallerInAHurry", deadline: 40 * time.Millisecond},
		{name: "Disabled", deadline: 80 * time.Millisecond, opts: []Option{WithLiveness(0, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conn := &quietConn{memConn: newMemConn(), chatty: tc.chatty}
			dial := func(context.Context, string, ...transport.Option) (transport.Conn, error) { return conn, nil }
			opts := append([]Option{WithDialer(dial), WithConnections(1), WithLiveness(liveness, time.Second),
				WithFailureThreshold(2), WithCircuitBreaker(2, time.Minute, time.Minute)}, tc.opts...)
			p := newTestPool(t, opts...)
			require.NoError(t, p.AddAgent(testCtx(t), "a", "unix:///quiet"))
			for i := range 2 {
				ctx, cancel := context.WithTimeout(context.Background(), tc.deadline)
				_, err := p.Send(ctx, "a", requestBody("r", uint32(i), false))
				cancel()
				require.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(err), "%v", err)
			}
			st, err := p.AgentStats("a")
			require.NoError(t, err)
			require.Len(t, st.Conns, 1)
			assert.Equal(t, tc.failures, st.Conns[0].ConsecutiveFailures)
			want := ConnReady
			if tc.failures >= 2 {
				want = ConnFailing
			}
			assert.Equal(t, want, st.Conns[0].State)
			assert.Equal(t, BreakerClosed, st.Breaker, "one silent connection opened the agent's breaker")
		})
	}
}
