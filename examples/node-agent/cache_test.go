package nodeagent_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire/cache"
	"github.com/agentwire/agentwire/pool"
)

// TestNodeAgentCachedDecisions: the Node agent's decisions carry a cache
// directive (path scope), so a pool with the cache interceptor asks it
// once per path and replays its allow and its block exactly.
func TestNodeAgentCachedDecisions(t *testing.T) {
	t.Parallel()
	a := startAgent(t)
	for _, ep := range []string{"unix://" + a.uds, "grpc://" + a.grpc} {
		ic, err := cache.NewInterceptor()
		if err != nil {
			t.Fatal(err)
		}
		p, err := pool.New(pool.WithInterceptors(ic))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := p.AddAgent(ctx, "node", ep); err != nil {
			t.Fatal(err)
		}
		for _, uri := range []string{"/shop", "/admin/users"} {
			var first proto.Message
			for i := range 3 {
				corr := fmt.Sprintf("cache-%s-%d", uri, i)
				resp, err := p.Send(ctx, "node", requestHeaders(corr, fmt.Sprintf("%s?n=%d", uri, i)))
				if err != nil {
					t.Fatalf("%s %s: %v", ep, uri, err)
				}
				checkDecision(t, uri, corr, resp)
				resp.CorrelationId, resp.Cache, resp.ProcessingTimeMs = "", nil, nil
				if first == nil {
					first = resp
				} else if !proto.Equal(first, resp) {
					t.Errorf("%s %s: replay %v differs from %v", ep, uri, resp, first)
				}
			}
		}
		st := ic.Stats()["node"]
		if st.Misses != 2 || st.Hits != 4 {
			t.Errorf("%s: %d misses and %d hits, want 2 and 4", ep, st.Misses, st.Hits)
		}
		cancel()
		if err := p.Close(); err != nil {
			t.Error(err)
		}
		ic.Close()
	}
}
