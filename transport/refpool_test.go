package transport_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentwire/agentwire/internal/reftest"
	"github.com/agentwire/agentwire/pool"
	"github.com/stretchr/testify/require"
)

// TestReferencePool: the pool dials reference agents through transport.Dial
// like any other, over several connections, in both encodings.
func TestReferencePool(t *testing.T) {
	t.Parallel()
	for _, enc := range []reftest.Encoding{reftest.JSON, reftest.MsgPack} {
		t.Run(string(enc), func(t *testing.T) {
			t.Parallel()
			a := &reftest.Agent{Caps: reftest.SampleCapabilities, Encodings: []reftest.Encoding{enc},
				Handle: func(ev reftest.Event) reftest.Response {
					return reftest.Response{Version: 2, Decision: reftest.Decision{Kind: "redirect", URL: "/x/" + ev.Correlation(), Status: 307}}
				}}
			path := startPeer(t, a)
			p, err := pool.New(pool.WithConnections(3))
			require.NoError(t, err)
			defer p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, p.AddAgent(ctx, "ref", "unix://"+path+"?encoding="+string(enc)))
			for _, corr := range []string{"a", "b", "c", "d", "e", "f"} {
				resp, err := p.Send(ctx, "ref", refEvents(corr)[0x10])
				require.NoError(t, err)
				require.Equal(t, "/x/"+corr, resp.GetRedirect().GetUrl())
			}
			require.Eventually(t, func() bool { return a.Conns() == 3 }, 5*time.Second, 10*time.Millisecond)
		})
	}
}
