package nodeagent_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

// nodeAgent is one running `node agent.mjs` serving both transports.
type nodeAgent struct {
	uds  string
	grpc string
}

var (
	agentOnce sync.Once
	shared    *nodeAgent
	agentErr  error
	stopAgent func()
)

// TestMain stops the shared agent process after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if stopAgent != nil {
		stopAgent()
	}
	os.Exit(code)
}

// startAgent starts the shared Node agent once. It fails, never skips, when
// Node or the npm packages are missing: CI must run scripts/setup.
func startAgent(t *testing.T) *nodeAgent {
	t.Helper()
	agentOnce.Do(func() { shared, agentErr = launch() })
	if agentErr != nil {
		t.Fatal(agentErr)
	}
	return shared
}

func launch() (*nodeAgent, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("node not found on PATH (Node.js 20 or later is needed): %w", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		return nil, err
	}
	for _, pkg := range []string{"@bufbuild/protobuf", "@connectrpc/connect-node"} {
		if _, err := os.Stat(filepath.Join(root, "node_modules", pkg, "package.json")); err != nil {
			return nil, fmt.Errorf("npm package %s is missing from %s/node_modules: run scripts/setup (npm ci) first", pkg, root)
		}
	}
	dir, err := os.MkdirTemp("", "aw")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "node.sock")
	cmd := exec.Command(node, filepath.Join(root, "examples/node-agent/agent.mjs"),
		"--uds", sock, "--grpc", "127.0.0.1:0",
		"--max-concurrency", "8", "--max-queue", "256",
		"--test-delay-header", "x-test-delay-ms", "--quiet")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start node agent: %w", err)
	}
	stopAgent = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		_ = os.RemoveAll(dir)
	}
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
		for s.Scan() {
		}
	}()
	var ready string
	select {
	case ready = <-line:
	case <-time.After(10 * time.Second):
		return nil, errors.New("node agent printed no ready line within 10 s")
	}
	a := &nodeAgent{}
	fields := strings.Fields(ready)
	if len(fields) == 0 || fields[0] != "ready" {
		return nil, fmt.Errorf("node agent's first line is %q, want \"ready ...\"", ready)
	}
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "uds":
			a.uds = v
		case "grpc":
			a.grpc = v
		}
	}
	if a.uds == "" || a.grpc == "" {
		return nil, fmt.Errorf("ready line %q lacks uds= or grpc=", ready)
	}
	return a, nil
}

type dialer struct {
	name string
	dial func(ctx context.Context, a *nodeAgent, opts ...transport.Option) (transport.Conn, error)
}

var dialers = []dialer{
	{"uds", func(ctx context.Context, a *nodeAgent, opts ...transport.Option) (transport.Conn, error) {
		return transport.DialUnix(ctx, a.uds, opts...)
	}},
	{"grpc", func(ctx context.Context, a *nodeAgent, opts ...transport.Option) (transport.Conn, error) {
		return transport.DialGRPC(ctx, a.grpc, opts...)
	}},
}

// eachTransport runs f against the Node agent over every transport.
func eachTransport(t *testing.T, f func(t *testing.T, ctx context.Context, conn transport.Conn), opts ...transport.Option) {
	t.Helper()
	a := startAgent(t)
	for _, d := range dialers {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer cancel()
			conn, err := d.dial(ctx, a, opts...)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer conn.Close(context.Background())
			f(t, ctx, conn)
		})
	}
}

func requestHeaders(corr, uri string, headers ...*agentv2.Header) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata:    &agentv2.RequestMetadata{CorrelationId: corr, RequestId: corr, ClientIp: "127.0.0.1", Protocol: "HTTP/1.1"},
		Method:      "GET",
		Uri:         uri,
		HttpVersion: "HTTP/1.1",
		Headers:     headers,
	}}}
}

// checkDecision asserts the policy: /admin* blocked with 403 and the audit
// tag, anything else allowed with x-agent: node set on the response.
func checkDecision(t *testing.T, uri, corr string, resp *agentv2.AgentResponse) {
	t.Helper()
	if resp.GetCorrelationId() != corr {
		t.Errorf("%s: correlation id %q, want %q", uri, resp.GetCorrelationId(), corr)
	}
	if strings.HasPrefix(uri, "/admin") {
		if resp.GetBlock().GetStatus() != 403 {
			t.Errorf("%s: decision %v, want block 403", uri, resp.GetDecision())
		}
		if tags := resp.GetAudit().GetTags(); !contains(tags, "admin-blocked") {
			t.Errorf("%s: audit tags %q lack admin-blocked", uri, tags)
		}
		return
	}
	if resp.GetAllow() == nil {
		t.Errorf("%s: decision %v, want allow", uri, resp.GetDecision())
	}
	ops := resp.GetResponseHeaders()
	if len(ops) != 1 || ops[0].GetSet().GetName() != "x-agent" || ops[0].GetSet().GetValue() != "node" {
		t.Errorf("%s: response header ops %v, want set x-agent: node", uri, ops)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func TestNodeAgentHandshake(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, ctx context.Context, conn transport.Conn) {
		caps := conn.Capabilities()
		if caps.GetAgentId() != "node-agent" || caps.GetProtocolVersion() != 2 {
			t.Errorf("capabilities %v", caps)
		}
		f := caps.GetFeatures()
		if !f.GetEchoesEventId() || !f.GetCancellation() || !f.GetFlowControl() || !f.GetHealthReporting() {
			t.Errorf("features %v", f)
		}
		if got := caps.GetHealthConfig().GetReportIntervalMs(); got != 10000 {
			t.Errorf("health interval %d ms, want the 10 s default", got)
		}
	})
}

func TestNodeAgentRejectsUnsupportedVersion(t *testing.T) {
	t.Parallel()
	a := startAgent(t)
	for _, d := range dialers {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			conn, err := d.dial(ctx, a, transport.WithProtocolVersions(1))
			if err == nil {
				conn.Close(ctx)
				t.Fatal("handshake offering only version 1 succeeded")
			}
			if !errors.Is(err, transport.ErrHandshakeRejected) || !strings.Contains(err.Error(), "unsupported protocol versions") {
				t.Errorf("error %v, want a rejected handshake explaining the version", err)
			}
		})
	}
}

func TestNodeAgentDecisions(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, ctx context.Context, conn transport.Conn) {
		for i, uri := range []string{"/admin", "/admin/users?id=1", "/index", "/", "/administrator"} {
			corr := fmt.Sprintf("dec-%d", i)
			resp, err := conn.Send(ctx, requestHeaders(corr, uri))
			if err != nil {
				t.Fatalf("%s: %v", uri, err)
			}
			checkDecision(t, uri, corr, resp)
		}
		// The other events of a request are allowed.
		others := []*agentv2.ProxyToAgent{
			{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{CorrelationId: "dec-2", Data: []byte("hello"), IsLast: true}}},
			{Message: &agentv2.ProxyToAgent_ResponseHeaders{ResponseHeaders: &agentv2.ResponseHeadersEvent{CorrelationId: "dec-2", StatusCode: 200}}},
			{Message: &agentv2.ProxyToAgent_ResponseBodyChunk{ResponseBodyChunk: &agentv2.BodyChunkEvent{CorrelationId: "dec-2", Data: []byte("world"), IsLast: true}}},
			{Message: &agentv2.ProxyToAgent_RequestComplete{RequestComplete: &agentv2.RequestCompleteEvent{CorrelationId: "dec-2", StatusCode: 200}}},
			{Message: &agentv2.ProxyToAgent_WebsocketFrame{WebsocketFrame: &agentv2.WebSocketFrameEvent{CorrelationId: "dec-2", Payload: []byte("x")}}},
			{Message: &agentv2.ProxyToAgent_Guardrail{Guardrail: &agentv2.GuardrailInspectEvent{CorrelationId: "dec-2", Content: "prompt"}}},
			{Message: &agentv2.ProxyToAgent_Configure{Configure: &agentv2.ConfigureEvent{ConfigJson: `{"mode":"strict"}`}}},
		}
		for _, ev := range others {
			resp, err := conn.Send(ctx, ev)
			if err != nil {
				t.Fatalf("%v: %v", ev.FrameType(), err)
			}
			if resp.GetAllow() == nil || resp.GetBlock() != nil {
				t.Errorf("%v: decision %v, want allow", ev.FrameType(), resp.GetDecision())
			}
		}
		// A failing handler is reported as an error with its code.
		_, err := conn.Send(ctx, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Configure{Configure: &agentv2.ConfigureEvent{ConfigJson: "{not json"}}})
		if agentwire.CodeOf(err) != agentwire.CodeInvalidArgument {
			t.Errorf("bad configure: error %v (code %v), want InvalidArgument", err, agentwire.CodeOf(err))
		}
	})
}

// TestNodeAgentConcurrentEvents keeps more events in flight than the
// agent's concurrency limit (8), honouring its pauses, and checks every
// answer matches its event.
func TestNodeAgentConcurrentEvents(t *testing.T) {
	t.Parallel()
	a := startAgent(t)
	for _, d := range dialers {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer cancel()
			var mu sync.Mutex
			pauses := 0
			conn, err := d.dial(ctx, a, transport.WithStatusHandler(func(st transport.Status) {
				if st.State == transport.StatePaused {
					mu.Lock()
					pauses++
					mu.Unlock()
				}
			}))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			const workers, perWorker = 24, 8
			var wg sync.WaitGroup
			errs := make(chan error, workers*perWorker)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range perWorker {
						corr := fmt.Sprintf("c-%d-%d", w, i)
						uri := fmt.Sprintf("/page/%d/%d", w, i)
						if (w+i)%3 == 0 {
							uri = fmt.Sprintf("/admin/%d/%d", w, i)
						}
						if err := conn.WaitResume(ctx, corr); err != nil {
							errs <- err
							return
						}
						// 20 ms of work each, so events pile up beyond the limit.
						resp, err := conn.Send(ctx, requestHeaders(corr, uri, &agentv2.Header{Name: "x-test-delay-ms", Value: "20"}))
						if err != nil {
							errs <- fmt.Errorf("%s: %w", uri, err)
							return
						}
						checkDecision(t, uri, corr, resp)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if st := conn.Status(); st.UnknownResponses != 0 || st.UnknownFrames != 0 {
				t.Errorf("status %+v: unknown responses or frames", st)
			}
			mu.Lock()
			defer mu.Unlock()
			if pauses == 0 {
				t.Error("the agent never paused the connection with 24 events in flight and a limit of 8")
			}
		})
	}
}

func TestNodeAgentCancel(t *testing.T) {
	t.Parallel()
	a := startAgent(t)
	for _, d := range dialers {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer cancel()
			// Frequent health reports tell when the agent holds the slow event.
			inFlight := make(chan uint32, 256)
			conn, err := d.dial(ctx, a,
				transport.WithHealthInterval(20*time.Millisecond),
				transport.WithHealthHandler(func(h *agentv2.HealthStatus) {
					select {
					case inFlight <- h.GetLoad().GetInFlight() + h.GetLoad().GetQueueDepth():
					default:
					}
				}))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			slow := requestHeaders("slow", "/slow", &agentv2.Header{Name: "X-Test-Delay-Ms", Value: "400"})
			done := make(chan error, 1)
			go func() {
				_, err := conn.Send(ctx, slow)
				done <- err
			}()
			for n := uint32(0); n == 0; {
				select {
				case n = <-inFlight:
				case <-ctx.Done():
					t.Fatal("the agent never reported the slow event in flight")
				}
			}
			if err := conn.Cancel(ctx, &agentv2.CancelRequest{CorrelationId: "slow", Reason: agentv2.CancelReason_CANCEL_REASON_CLIENT_DISCONNECT}); err != nil {
				t.Fatalf("cancel: %v", err)
			}
			if err := <-done; agentwire.CodeOf(err) != agentwire.CodeCanceled {
				t.Fatalf("cancelled Send: %v, want Canceled", err)
			}
			// An agent that ignored the cancel would answer after 400 ms; that
			// answer would count as an unknown response.
			time.Sleep(600 * time.Millisecond)
			if n := conn.Status().UnknownResponses; n != 0 {
				t.Errorf("%d late responses after cancel: the agent did not drop the cancelled answer", n)
			}
			resp, err := conn.Send(ctx, requestHeaders("after", "/index"))
			if err != nil {
				t.Fatal(err)
			}
			checkDecision(t, "/index", "after", resp)
		})
	}
}

func TestNodeAgentPing(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, ctx context.Context, conn transport.Conn) {
		for range 3 {
			rtt, err := conn.Ping(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rtt <= 0 {
				t.Errorf("rtt %v", rtt)
			}
		}
	})
}

func TestNodeAgentHealthAndDrain(t *testing.T) {
	t.Parallel()
	reports := map[string]chan *agentv2.HealthStatus{}
	a := startAgent(t)
	for _, d := range dialers {
		reports[d.name] = make(chan *agentv2.HealthStatus, 64)
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			ch := reports[d.name]
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer cancel()
			start := time.Now()
			conn, err := d.dial(ctx, a,
				transport.WithHealthInterval(150*time.Millisecond),
				transport.WithHealthHandler(func(h *agentv2.HealthStatus) {
					select {
					case ch <- h:
					default:
					}
				}))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			if got := conn.Capabilities().GetHealthConfig().GetReportIntervalMs(); got != 150 {
				t.Errorf("agent reports interval %d ms, want the 150 ms the proxy asked for", got)
			}
			next := func() *agentv2.HealthStatus {
				select {
				case h := <-ch:
					return h
				case <-ctx.Done():
					t.Fatal("no health report")
					return nil
				}
			}
			first := next()
			if d := time.Since(start); d > time.Second {
				t.Errorf("first health report after %v, want right after the handshake", d)
			}
			if first.GetAgentId() != "node-agent" || first.GetState() != agentv2.HealthState_HEALTH_STATE_HEALTHY || first.GetTimestampMs() == 0 {
				t.Errorf("first report %v", first)
			}
			next() // the periodic one
			if err := conn.Notify(ctx, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Drain{Drain: &agentv2.DrainRequest{DurationMs: 1000}}}); err != nil {
				t.Fatal(err)
			}
			for h := next(); h.GetState() != agentv2.HealthState_HEALTH_STATE_DRAINING; h = next() {
			}
			if st := conn.Status(); st.State != transport.StateDraining {
				t.Errorf("connection state %v after drain, want draining", st.State)
			}
		})
	}
}

func TestNodeAgentContinuesTrace(t *testing.T) {
	t.Parallel()
	eachTransport(t, func(t *testing.T, ctx context.Context, conn transport.Conn) {
		const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
		ev := requestHeaders("traced", "/admin/traced")
		tp := "00-" + traceID + "-" + parentID + "-01"
		ev.GetRequestHeaders().Metadata.Traceparent = &tp
		resp, err := conn.Send(ctx, ev)
		if err != nil {
			t.Fatal(err)
		}
		checkDecision(t, "/admin/traced", "traced", resp)
		got := resp.GetAudit().GetCustom()["traceparent"]
		parts := strings.Split(got, "-")
		if len(parts) != 4 || parts[1] != traceID || parts[2] == parentID || len(parts[2]) != 16 {
			t.Errorf("agent span traceparent %q: want trace %s with a new span id", got, traceID)
		}
	})
}

// TestNodeAgentFramingErrors speaks raw frames to the Unix socket.
func TestNodeAgentFramingErrors(t *testing.T) {
	t.Parallel()
	a := startAgent(t)
	handshake := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Handshake{Handshake: &agentv2.HandshakeRequest{SupportedVersions: []uint32{2}, ProxyId: "raw"}}}
	ping := &agentv2.ProxyToAgent{EventId: 9, Message: &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{Sequence: 42, TimestampMs: 7}}}

	open := func(t *testing.T) (net.Conn, *codec.Reader) {
		t.Helper()
		nc, err := net.Dial("unix", a.uds)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		return nc, codec.NewReader(nc, 0)
	}
	write := func(t *testing.T, nc net.Conn, b []byte) {
		t.Helper()
		if _, err := nc.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	frame := func(t *testing.T, m *agentv2.ProxyToAgent) []byte {
		t.Helper()
		b, err := codec.AppendFrame(nil, m, 0)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// readUntil reads agent messages until one of the wanted case arrives.
	readUntil := func(t *testing.T, r *codec.Reader, want agentv2.FrameType) *agentv2.AgentToProxy {
		t.Helper()
		for {
			var m agentv2.AgentToProxy
			if err := r.ReadAgentToProxy(&m); err != nil {
				t.Fatalf("waiting for frame 0x%02x: %v", uint8(want), err)
			}
			if m.FrameType() == want {
				return &m
			}
		}
	}
	// expectClosed reads until the agent closes the connection.
	expectClosed := func(t *testing.T, r *codec.Reader) {
		t.Helper()
		for {
			var m agentv2.AgentToProxy
			err := r.ReadAgentToProxy(&m)
			if err == nil {
				continue // health sent before the close
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal("the agent kept the connection open")
			}
			return
		}
	}
	handshaken := func(t *testing.T) (net.Conn, *codec.Reader) {
		nc, r := open(t)
		write(t, nc, frame(t, handshake))
		if hs := readUntil(t, r, agentv2.AgentToProxyFrameHandshake).GetHandshake(); !hs.GetSuccess() {
			t.Fatalf("handshake: %v", hs)
		}
		return nc, r
	}

	t.Run("unknown frame type is skipped", func(t *testing.T) {
		t.Parallel()
		nc, r := handshaken(t)
		write(t, nc, append([]byte{0, 0, 0, 4, 0x7f, 1, 2, 3}, frame(t, ping)...))
		pong := readUntil(t, r, agentv2.AgentToProxyFramePong)
		if pong.GetEventId() != 9 || pong.GetPong().GetSequence() != 42 || pong.GetPong().GetPingTimestampMs() != 7 {
			t.Errorf("pong %v", pong)
		}
	})
	t.Run("frame split byte by byte", func(t *testing.T) {
		t.Parallel()
		nc, r := handshaken(t)
		for _, b := range frame(t, requestHeaders("split", "/admin/split")) {
			write(t, nc, []byte{b})
		}
		resp := readUntil(t, r, agentv2.AgentToProxyFrameResponse)
		checkDecision(t, "/admin/split", "split", resp.GetResponse())
	})
	bad := map[string]func(t *testing.T) []byte{
		"zero length":         func(*testing.T) []byte { return []byte{0, 0, 0, 0} },
		"oversize":            func(*testing.T) []byte { return []byte{0x01, 0, 0, 1, 0x10} },
		"malformed payload":   func(*testing.T) []byte { return []byte{0, 0, 0, 3, 0x10, 0xff, 0xff} },
		"type/payload differ": func(t *testing.T) []byte { b := frame(t, ping); b[4] = 0x10; return b },
		"second handshake":    func(t *testing.T) []byte { return frame(t, handshake) },
	}
	for name, payload := range bad {
		t.Run(name+" closes the connection", func(t *testing.T) {
			t.Parallel()
			nc, r := handshaken(t)
			write(t, nc, payload(t))
			expectClosed(t, r)
		})
	}
	t.Run("event before the handshake closes the connection", func(t *testing.T) {
		t.Parallel()
		nc, r := open(t)
		write(t, nc, frame(t, requestHeaders("early", "/")))
		expectClosed(t, r)
	})
}
