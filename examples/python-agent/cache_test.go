package pythonagent_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire/cache"
	"github.com/agentwire/agentwire/pool"
)

// TestPythonAgentCachedDecisions: the Python agent's decisions carry a
// cache directive (path and its test-hook headers), so a pool with the
// cache interceptor asks it once per path and replays its answers exactly.
func TestPythonAgentCachedDecisions(t *testing.T) {
	t.Parallel()
	requireDeps(t)
	for _, ep := range endpoints {
		t.Run(ep.name, func(t *testing.T) {
			t.Parallel()
			agent := ep.start(t)
			ic, err := cache.NewInterceptor()
			require.NoError(t, err)
			defer ic.Close()
			p, err := pool.New(pool.WithInterceptors(ic))
			require.NoError(t, err)
			defer func() { assert.NoError(t, p.Close()) }()
			ctx := ctxFor(t, 10*time.Second)
			require.NoError(t, p.AddAgent(ctx, "py", agent.url))
			for _, uri := range []string{"/shop", "/admin/users"} {
				var first proto.Message
				for i := range 3 {
					corr := fmt.Sprintf("cache-%s-%d", uri, i)
					resp, err := p.Send(ctx, "py", requestHeaders(corr, fmt.Sprintf("%s?n=%d", uri, i)))
					require.NoError(t, err)
					if uri == "/shop" {
						assertAllowed(t, resp, corr)
					} else {
						assertBlocked(t, resp, corr)
					}
					resp.CorrelationId, resp.Cache, resp.ProcessingTimeMs = "", nil, nil
					if first == nil {
						first = resp
					} else {
						assert.True(t, proto.Equal(first, resp), "replay %v differs from %v", resp, first)
					}
				}
			}
			st := ic.Stats()["py"]
			assert.Equal(t, uint64(2), st.Misses)
			assert.Equal(t, uint64(4), st.Hits)
		})
	}
}
