package httpguard_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/events"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/httpguard"
	"github.com/agentwire/agentwire/pool"
)

// allowAll allows every event.
type allowAll struct{ agent.Base }

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}

func benchRequest() *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/api/items?id=7", nil)
	r.Header.Set("User-Agent", "bench/1.0")
	r.Header.Set("Accept", "application/json")
	return r
}

// BenchmarkOverhead compares one request through the middleware (request
// headers only) with what a hand-written proxy does through the pool for
// the same agent: build the event, send it, and end the request at the
// agent (a cancel, as the guard does for an agent without
// request_complete). The difference is the middleware's overhead. "unix"
// asks a real agent on a Unix socket; "answered" has a pool interceptor
// answer at once, which takes the agent's variance out of the figure.
func BenchmarkOverhead(b *testing.B) {
	answer := pool.InterceptorFunc(func(pool.SendFunc) pool.SendFunc {
		allow := agent.Allow()
		return func(context.Context, *pool.Call) (*agentv2.AgentResponse, error) { return allow, nil }
	})
	for _, mode := range []struct {
		name string
		opts []pool.Option
	}{{"unix", nil}, {"answered", []pool.Option{pool.WithInterceptors(answer)}}} {
		p, err := pool.New(append([]pool.Option{pool.WithLogger(quiet), pool.WithConnections(1)}, mode.opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.AddAgent(context.Background(), "a", startUnixB(b)); err != nil {
			b.Fatal(err)
		}
		b.Run(mode.name+"/pool", func(b *testing.B) { benchPool(b, p) })
		b.Run(mode.name+"/middleware", func(b *testing.B) { benchMiddleware(b, p) })
		p.Close()
	}
}

func benchPool(b *testing.B, p *pool.Pool) {
	ctx := context.Background()
	r := benchRequest()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		corr := "c-" + strconv.Itoa(i)
		if _, err := p.Send(ctx, "a", events.RequestHeaders(r, corr)); err != nil {
			b.Fatal(err)
		}
		if err := p.Cancel(ctx, "a", &agentv2.CancelRequest{CorrelationId: corr, Reason: agentv2.CancelReason_CANCEL_REASON_UNSPECIFIED}); err != nil &&
			!errors.Is(err, pool.ErrUnknownRequest) {
			b.Fatal(err)
		}
	}
}

func benchMiddleware(b *testing.B, p *pool.Pool) {
	g, err := httpguard.New(p, httpguard.WithLogger(quiet),
		httpguard.WithRoute("/", httpguard.WithAgent("a", httpguard.WithEvents(httpguard.RequestHeaders))))
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close(context.Background())
	h := g.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := benchRequest()
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
		clear(w.h)
	}
}

func startUnixB(b *testing.B) string {
	srv, err := agent.NewServer(allowAll{}, agent.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	path := b.TempDir() + "/a.sock"
	ln, err := srv.ListenUnix(path)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeUnix(context.Background(), ln) }()
	b.Cleanup(func() { srv.Close(); <-done })
	return "unix://" + path
}
