package reliability_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/stretchr/testify/require"
)

// The example agent is built once per test binary, on first use, into a
// directory TestMain removes.
var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func wafAgentBin(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "aw-bin")
		if build.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		build.bin, build.err = testagent.BuildAgent(ctx, testagent.WAFAgentPackage, build.dir)
	})
	require.NoError(t, build.err)
	return build.bin
}

func cleanupBuilds() {
	if build.dir != "" {
		_ = os.RemoveAll(build.dir)
	}
}

// shortDir is a temporary directory whose paths fit a Unix socket address
// (t.TempDir's may not).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "aw")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// startWAF runs the example agent as a separate process with args; it is
// stopped when the test ends, if the test has not already.
func startWAF(t *testing.T, args ...string) *testagent.AgentProcess {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := testagent.StartAgent(ctx, wafAgentBin(t), args...)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil && !strings.Contains(err.Error(), "signal: killed") {
			t.Logf("%v: %v", p, err)
		}
	})
	return p
}

func headersEvent(corr, uri string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{CorrelationId: corr, ClientIp: "127.0.0.1", Protocol: "HTTP/1.1"},
		Method:   "GET", Uri: uri,
		Headers: []*agentv2.Header{{Name: "host", Value: "reliability.test"}, {Name: "user-agent", Value: "reliability"}},
	}}}
}

func completeEvent(corr string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestComplete{RequestComplete: &agentv2.RequestCompleteEvent{
		CorrelationId: corr, StatusCode: 200,
	}}}
}

// eventually polls cond every 5 ms until it holds or d passes, and returns
// how long it took.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// quantile returns the q-quantile of ds (which it sorts).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(q * float64(len(ds)-1))
	return ds[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }
