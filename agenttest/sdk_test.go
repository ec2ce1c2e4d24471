package agenttest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/examples/waf-agent/waf"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
)

// wafMutationHeader is the request header the example WAF sets on every
// request it allows.
const wafMutationHeader = "x-waf"

func newSDKServer(t *testing.T, h agent.Handler, opts ...agent.Option) *agent.Server {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := agent.NewServer(h, append([]agent.Option{agent.WithAgentID("sdk-test"), agent.WithLogger(quiet)}, opts...)...)
	require.NoError(t, err)
	return srv
}

// serveSDKUnix serves srv on a fresh socket until the test ends.
func serveSDKUnix(t *testing.T, srv *agent.Server) string {
	t.Helper()
	path := socketPath(t)
	ln, err := srv.ListenUnix(path)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeUnix(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		srv.Close()
		require.NoError(t, <-done)
	})
	return "unix://" + path
}

// serveSDKGRPC serves srv with grpc-go on a loopback port until the test ends.
func serveSDKGRPC(t *testing.T, srv *agent.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer(agent.GRPCServerOptions()...)
	srv.RegisterGRPC(gs)
	done := make(chan error, 1)
	go func() { done <- gs.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		gs.Stop()
		require.NoError(t, <-done)
	})
	return "grpc://" + ln.Addr().String()
}

// serveSDKH2C serves srv's Connect handler on a loopback port until the test ends.
func serveSDKH2C(t *testing.T, srv *agent.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeH2C(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		srv.Close()
		require.NoError(t, <-done)
	})
	return "http://" + ln.Addr().String()
}

func TestRunAgainstSDKAgent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		serve func(*testing.T, *agent.Server) string
	}{
		{"unix", serveSDKUnix},
		{"grpc", serveSDKGRPC},
		{"connect", serveSDKH2C},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			endpoint := tc.serve(t, newSDKServer(t, &waf.Handler{}))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			results, err := Run(ctx, endpoint, WithMutationHeader(wafMutationHeader), WithBlockStatus(403))
			require.NoError(t, err)
			requireAllPass(t, results)
			got := byName(results)
			for _, name := range CheckNames() {
				r := got[name]
				switch {
				case name == "frames/malformed" || name == "frames/oversize" || name == "frames/unknown-type":
					assert.Equal(t, tc.name == "unix", r.Passed, "%s: %+v", name, r)
					assert.Equal(t, tc.name != "unix", r.Skipped, "%s: %+v", name, r)
				default:
					assert.True(t, r.Passed, "%s: %+v", name, r)
				}
			}
			assert.Contains(t, got["decision/block"].Detail, "audit tags admin-blocked")
		})
	}
}

// slowHandler holds every body chunk a while, so that a burst fills the
// agent's concurrency limit and it has to pause the proxy.
type slowHandler struct {
	agent.Base
}

func (slowHandler) RequestBodyChunk(ctx context.Context, _ *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	select {
	case <-time.After(20 * time.Millisecond):
	case <-ctx.Done():
	}
	return agent.Allow(), nil
}

func TestFlowControlAgainstSlowSDKAgent(t *testing.T) {
	t.Parallel()
	srv := newSDKServer(t, slowHandler{}, agent.WithMaxConcurrency(4))
	endpoint := serveSDKUnix(t, srv)
	results, err := Run(context.Background(), endpoint, WithChecks("flow-control", "concurrency/many-in-flight"), WithLoad(60, 6))
	require.NoError(t, err)
	requireAllPass(t, results)
	got := byName(results)
	assert.True(t, got["flow-control"].Passed, "%+v", got["flow-control"])
	assert.Contains(t, got["flow-control"].Detail, "paused and resumed")
	assert.Contains(t, got["concurrency/many-in-flight"].Detail, "up to 4 in flight")
}

// failingHandler answers every request with a handler error.
type failingHandler struct {
	agent.Base
}

func (failingHandler) RequestHeaders(context.Context, *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	return nil, errors.New("policy store unavailable")
}

func TestDecisionChecksFailOnHandlerErrors(t *testing.T) {
	t.Parallel()
	endpoint := serveSDKUnix(t, newSDKServer(t, failingHandler{}))
	results, err := Run(context.Background(), endpoint, WithChecks("event/request_headers", "decision/block", "decision/allow"))
	require.NoError(t, err)
	got := byName(results)
	// An error answer is still an answer with the right correlation id...
	assert.True(t, got["event/request_headers"].Passed, "%+v", got["event/request_headers"])
	assert.Contains(t, got["event/request_headers"].Detail, "policy store unavailable")
	// ...but not a decision.
	assert.True(t, got["decision/block"].Failed())
	assert.True(t, got["decision/allow"].Failed())
	assert.Contains(t, got["decision/allow"].Detail, "reported an error instead of a decision")
}
