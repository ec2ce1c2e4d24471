package pool_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/pool/balancer"
	"github.com/agentwire/agentwire/transport"
)

// waf blocks requests for /admin.
type waf struct{ agent.Base }

func (waf) RequestHeaders(_ context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	if strings.HasPrefix(ev.GetUri(), "/admin") {
		return agent.Block(403, "forbidden"), nil
	}
	return agent.Allow(), nil
}

// serveWAF serves the waf agent on a Unix socket (normally another
// process) and returns its endpoint and how to stop it.
func serveWAF(ctx context.Context) (endpoint string, stop func()) {
	dir, err := os.MkdirTemp("", "aw")
	if err != nil {
		log.Fatal(err)
	}
	sock := filepath.Join(dir, "waf.sock")
	srv, err := agent.NewServer(waf{}, agent.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	ln, err := srv.ListenUnix(sock)
	if err != nil {
		log.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.ServeUnix(ctx, ln)
	}()
	return "unix://" + sock, func() {
		srv.Close()
		<-served
		_ = os.RemoveAll(dir)
	}
}

func Example() {
	ctx := context.Background()
	endpoint, stop := serveWAF(ctx)
	defer stop()

	// The proxy's side: a pool with the agent in it.
	p, err := pool.New(pool.WithPolicy(balancer.LeastInFlight))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Shutdown(ctx)
	if err := p.AddAgent(ctx, "waf", endpoint); err != nil {
		log.Fatal(err)
	}

	for _, uri := range []string{"/index.html", "/admin/users"} {
		corr := "req" + uri
		resp, err := p.Send(ctx, "waf", &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{
			RequestHeaders: &agentv2.RequestHeadersEvent{
				Metadata: &agentv2.RequestMetadata{CorrelationId: corr}, Method: "GET", Uri: uri,
			}}})
		if err != nil {
			log.Fatal(err)
		}
		if b := resp.GetBlock(); b != nil {
			fmt.Println(uri, "blocked with", b.GetStatus())
			continue
		}
		fmt.Println(uri, "allowed")
		// The rest of the request goes to the same connection.
		if _, err := p.Send(ctx, "waf", &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestComplete{
			RequestComplete: &agentv2.RequestCompleteEvent{CorrelationId: corr, StatusCode: 200},
		}}); err != nil {
			log.Fatal(err)
		}
	}
	s, _ := p.AgentStats("waf")
	fmt.Println("open requests:", s.OpenRequests)
	// Output:
	// /index.html allowed
	// /admin/users blocked with 403
	// open requests: 0
}

// A reverse listener that feeds the pool: the agent dials in, and
// connections over the pool's limit are refused at registration.
func ExamplePool_ReverseOptions() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "aw")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "proxy.sock")

	// The proxy's side: a pool taking one reverse connection per agent, and
	// the listener agents dial (authenticated here by the socket's 0600 mode).
	p, err := pool.New(pool.WithMaxReverseConns(1), pool.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Shutdown(ctx)
	l, err := transport.NewReverseListener(append(p.ReverseOptions(), transport.WithoutAuth())...)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close(ctx)
	if _, err := l.ListenUnix(sock); err != nil {
		log.Fatal(err)
	}

	// The agent (normally another process) asks for two connections.
	srv, err := agent.NewServer(waf{}, agent.WithAgentID("waf"), agent.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	refused := make(chan error, 1)
	d, err := agent.NewReverseDialer(srv, "unix://"+sock, agent.WithConnections(2),
		agent.WithDialErrorHandler(func(err error, _ time.Duration) {
			select {
			case refused <- err:
			default:
			}
		}))
	if err != nil {
		log.Fatal(err)
	}
	go d.Run(ctx)
	defer d.Close(ctx)

	fmt.Println(<-refused)
	for {
		if s, err := p.AgentStats("waf"); err == nil && len(s.Conns) == 1 && s.Conns[0].State == pool.ConnReady {
			break
		}
		time.Sleep(time.Millisecond)
	}
	resp, err := p.Send(ctx, "waf", &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{
		RequestHeaders: &agentv2.RequestHeadersEvent{
			Metadata: &agentv2.RequestMetadata{CorrelationId: "r1"}, Method: "GET", Uri: "/admin/users",
		}}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("blocked with", resp.GetBlock().GetStatus())
	// Output:
	// resource_exhausted: agent: registration rejected by the proxy: pool: too many reverse connections for agent: "waf" already holds 1, the proxy's limit
	// blocked with 403
}

// An interceptor sees every event and its decision, and may answer without
// the agent: here a health check never reaches it.
func ExampleWithInterceptors() {
	skipHealth := pool.InterceptorFunc(func(next pool.SendFunc) pool.SendFunc {
		return func(ctx context.Context, c *pool.Call) (*agentv2.AgentResponse, error) {
			if c.Event.GetRequestHeaders().GetUri() == "/healthz" {
				return agent.Allow(), nil
			}
			return next(ctx, c)
		}
	})
	p, err := pool.New(pool.WithInterceptors(skipHealth))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	resp, err := p.Send(context.Background(), "waf", &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{
		RequestHeaders: &agentv2.RequestHeadersEvent{Metadata: &agentv2.RequestMetadata{CorrelationId: "r1"},
			Method: "GET", Uri: "/healthz"}}})
	fmt.Println(resp.GetAllow() != nil, err)
	_, err = p.Send(context.Background(), "waf", &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{
		RequestHeaders: &agentv2.RequestHeadersEvent{Metadata: &agentv2.RequestMetadata{CorrelationId: "r2"},
			Method: "GET", Uri: "/login"}}})
	fmt.Println(err)
	// Output:
	// true <nil>
	// not_found: pool: unknown agent "waf"
}

// Events nobody waits for (an audit copy, a mirror) go through Go: the
// caller's goroutine routes and writes the event, and the answer comes
// later to a function.
func ExamplePool_Go() {
	ctx := context.Background()
	endpoint, stop := serveWAF(ctx)
	defer stop()
	p, err := pool.New()
	if err != nil {
		log.Fatal(err)
	}
	defer p.Shutdown(ctx)
	if err := p.AddAgent(ctx, "waf", endpoint); err != nil {
		log.Fatal(err)
	}

	// Go needs a context that ends: it bounds the call.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	answers := make(chan string, 1)
	p.Go(cctx, "waf", &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{
		RequestHeaders: &agentv2.RequestHeadersEvent{
			Metadata: &agentv2.RequestMetadata{CorrelationId: "audit-1"}, Method: "GET", Uri: "/admin",
		}}}, func(resp *agentv2.AgentResponse, err error) {
		// On the connection's reader: hand the answer on, never block.
		switch {
		case err != nil:
			answers <- "error: " + err.Error()
		case resp.GetBlock() != nil:
			answers <- fmt.Sprint("would block with ", resp.GetBlock().GetStatus())
		default:
			answers <- "would allow"
		}
	})
	fmt.Println(<-answers)
	// Output:
	// would block with 403
}
