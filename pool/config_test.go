package pool

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	sdk "github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

func configEvent(version, js string) *agentv2.ConfigureEvent {
	return &agentv2.ConfigureEvent{ConfigJson: js, ConfigVersion: &version}
}

func TestConfigPushAckedAndRetried(t *testing.T) {
	t.Parallel()
	rec := newRecorder("a")
	var mu sync.Mutex
	var got []string
	rec.configure = func(ctx context.Context, ev *agentv2.ConfigureEvent) error {
		mu.Lock()
		got = append(got, ev.GetConfigJson())
		first := len(got) == 1
		mu.Unlock()
		if first {
			// No answer within the call timeout: a transport failure, retried.
			select {
			case <-time.After(150 * time.Millisecond):
			case <-ctx.Done():
			}
		}
		return nil
	}
	ua := newUnixAgent(t, rec)
	p := newTestPool(t, WithTransportOptions(transport.WithCallTimeout(100*time.Millisecond)))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))
	// Connections that join after a push get it replayed: count only the
	// push's own attempts.
	require.Eventually(t, func() bool { return connsIn(t, p, "waf", ConnReady) == 4 }, 5*time.Second, time.Millisecond)

	acks, err := p.PushConfig(ctx, "waf", configEvent("v2", `{"mode":"block"}`))
	require.NoError(t, err)
	require.Len(t, acks, 1, "one instance")
	assert.True(t, acks[0].Accepted)
	// The agent handles configure events one at a time, so a retry may
	// also wait behind the slow first one.
	assert.GreaterOrEqual(t, acks[0].Attempts, 2)
	assert.Equal(t, ua.endpoint(), acks[0].Instance)
	assert.NotEmpty(t, acks[0].ConnID)
	assert.NoError(t, acks[0].Err)
	mu.Lock()
	assert.Len(t, got, acks[0].Attempts, "every attempt really transmitted")
	for _, js := range got {
		assert.Equal(t, `{"mode":"block"}`, js)
	}
	mu.Unlock()
	s := stats(t, p, "waf")
	require.NotNil(t, s.Config)
	assert.Equal(t, "v2", s.Config.Version)
	assert.Equal(t, 1, s.Config.Instances)
	assert.Equal(t, 1, s.Config.Accepted)
}

func TestConfigPushRejectedAndExpired(t *testing.T) {
	t.Parallel()
	rec := newRecorder("a")
	var slow atomic.Bool
	rec.configure = func(ctx context.Context, ev *agentv2.ConfigureEvent) error {
		if slow.Load() {
			<-ctx.Done()
			return ctx.Err()
		}
		return agentwire.Errorf(agentwire.CodeInvalidArgument, "unknown mode %q", ev.GetConfigJson())
	}
	ua := newUnixAgent(t, rec)
	p := newTestPool(t, WithConfigPushExpiry(200*time.Millisecond),
		WithTransportOptions(transport.WithCallTimeout(40*time.Millisecond)))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))

	// The agent's rejection is final.
	acks, err := p.PushConfig(ctx, "waf", configEvent("v3", "nonsense"))
	assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err), "%v", err)
	require.Len(t, acks, 1)
	assert.False(t, acks[0].Accepted)
	assert.Equal(t, 1, acks[0].Attempts)
	assert.True(t, agentwire.IsWireError(acks[0].Err))

	// An agent that never answers: retried until the push expires.
	slow.Store(true)
	start := time.Now()
	acks, err = p.PushConfig(ctx, "waf", configEvent("v4", "{}"))
	assert.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(err), "%v", err)
	require.Len(t, acks, 1)
	assert.False(t, acks[0].Accepted)
	assert.GreaterOrEqual(t, acks[0].Attempts, 2)
	assert.Less(t, time.Since(start), 2*time.Second)
	s := stats(t, p, "waf")
	assert.Equal(t, "v4", s.Config.Version)
	assert.Zero(t, s.Config.Accepted)
}

func TestConfigPushToAllAgents(t *testing.T) {
	t.Parallel()
	ra, rb := newRecorder("a"), newRecorder("b")
	ua := newUnixAgent(t, ra)
	ub := newUnixAgent(t, rb, sdk.WithSupportedEvents(agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS))
	p := newTestPool(t, WithConnections(2))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "a", ua.endpoint()))
	require.NoError(t, p.AddAgent(ctx, "b", ub.endpoint()))
	require.Eventually(t, func() bool { return connsIn(t, p, "a", ConnReady) == 2 }, 5*time.Second, time.Millisecond)

	acks, err := p.PushConfig(ctx, AllAgents, configEvent("v1", "{}"))
	require.NoError(t, err)
	require.Len(t, acks, 1, "only agents declaring config_push")
	assert.Equal(t, "a", acks[0].AgentID)
	assert.Equal(t, int64(1), ra.configures.Load(), "one configure per instance, not per connection")
	assert.Zero(t, rb.configures.Load())

	_, err = p.PushConfig(ctx, "b", configEvent("v1", "{}"))
	assert.Equal(t, agentwire.CodeUnimplemented, agentwire.CodeOf(err))
	_, err = p.PushConfig(ctx, "c", configEvent("v1", "{}"))
	assert.ErrorIs(t, err, ErrUnknownAgent)
}

func TestAgentConfigUpdateReachesCallback(t *testing.T) {
	t.Parallel()
	ua := newUnixAgent(t, newRecorder("a"))
	type call struct {
		agentID, requestID string
	}
	calls := make(chan call, 1)
	p := newTestPool(t, WithConnections(1), WithConfigUpdateHandler(
		func(_ context.Context, agentID string, req *agentv2.ConfigUpdateRequest) *agentv2.ConfigUpdateResponse {
			calls <- call{agentID, req.GetRequestId()}
			return &agentv2.ConfigUpdateResponse{Accepted: true}
		}))
	ctx := testCtx(t)
	require.NoError(t, p.AddAgent(ctx, "waf", ua.endpoint()))

	// The agent registers the connection just after its handshake answer.
	var resp *agentv2.ConfigUpdateResponse
	require.Eventually(t, func() bool {
		var err error
		resp, err = ua.server().RequestConfigUpdate(ctx, &agentv2.ConfigUpdateRequest{
			RequestId: "u1", UpdateType: &agentv2.ConfigUpdateRequest_RequestReload{RequestReload: &agentv2.RequestReload{}},
		})
		return err == nil
	}, 5*time.Second, time.Millisecond)
	assert.True(t, resp.GetAccepted())
	assert.Equal(t, "u1", resp.GetRequestId())
	assert.Equal(t, call{"waf", "u1"}, <-calls)
}
