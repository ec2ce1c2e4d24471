package pythonagent_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	"github.com/agentwire/agentwire/agenttest"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// python is Debian's interpreter, the one python3-grpcio and
// python3-protobuf are installed for (the python3 first on PATH may not be).
const python = "/usr/bin/python3"

const (
	delayHeader = "x-agent-test-delay-ms"
	failHeader  = "x-agent-test-fail"
)

var (
	depsOnce sync.Once
	depsErr  error
)

// requireDeps fails the test, with what to do about it, when Debian's
// Python lacks grpcio, protobuf or the generated stubs.
func requireDeps(t *testing.T) {
	t.Helper()
	depsOnce.Do(func() {
		gen, err := filepath.Abs(filepath.Join("..", "..", "gen", "python"))
		if err != nil {
			depsErr = err
			return
		}
		script := "import sys; sys.path.insert(0, sys.argv[1]); import grpc, google.protobuf; " +
			"from sentinel.agent.v2 import agent_pb2, agent_pb2_grpc, options_pb2"
		out, err := exec.Command(python, "-c", script, gen).CombinedOutput()
		if err != nil {
			depsErr = fmt.Errorf("%s cannot import grpc, protobuf and the stubs in %s: %v\n%s", python, gen, err, out)
		}
	})
	if depsErr != nil {
		t.Fatalf("%v\nrun scripts/setup (installs Debian's python3-grpcio and python3-protobuf) and regenerate gen/python", depsErr)
	}
}

// agentProc is a running agent.py; t.Cleanup kills it.
type agentProc struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{} // closed once Wait returned
	err    error         // Wait's result, set before exited is closed
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startAgent runs agent.py with args and waits for its "ready" line.
func startAgent(t *testing.T, args ...string) (*agentProc, error) {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	p := &agentProc{stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(python, append([]string{"agent.py", "--test-hooks"}, args...)...)
	p.cmd.Stdout = w
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		_ = r.Close()
		_ = w.Close()
		t.Fatalf("start %s agent.py: %v", python, err)
	}
	_ = w.Close()
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	ready := make(chan bool, 1)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		sc := bufio.NewScanner(r)
		sent := false
		for sc.Scan() {
			if !sent && strings.TrimSpace(sc.Text()) == "ready" {
				ready <- true
				sent = true
			}
		}
		if !sent {
			ready <- false
		}
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		<-readerDone
		_ = r.Close()
		if t.Failed() {
			t.Logf("agent %v stderr:\n%s", args, p.stderr.String())
		}
	})
	select {
	case ok := <-ready:
		if !ok {
			<-p.exited
			return nil, fmt.Errorf("agent exited before ready (%v):\n%s", p.err, p.stderr.String())
		}
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("agent not ready within 10s:\n%s", p.stderr.String())
	}
	return p, nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// dialFunc dials the agent under test with the Go proxy transport.
type dialFunc func(ctx context.Context, opts ...transport.Option) (transport.Conn, error)

// running is an agent listening on one transport.
type running struct {
	proc *agentProc
	url  string // endpoint as transport.Dial and agenttest take it
	dial dialFunc
}

// endpoint is one transport of the agent under test.
type endpoint struct {
	name  string
	start func(t *testing.T, args ...string) running
}

var endpoints = []endpoint{
	{"uds", func(t *testing.T, args ...string) running {
		dir, err := os.MkdirTemp("", "aw")
		require.NoError(t, err)
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		path := filepath.Join(dir, "agent.sock")
		p, err := startAgent(t, append([]string{"--uds", path}, args...)...)
		require.NoError(t, err)
		return running{p, "unix://" + path, func(ctx context.Context, opts ...transport.Option) (transport.Conn, error) {
			return transport.DialUnix(ctx, path, opts...)
		}}
	}},
	{"grpc", func(t *testing.T, args ...string) running {
		var addr string
		var p *agentProc
		var err error
		for range 3 { // the free port may be taken before the agent binds it
			addr = freePort(t)
			if p, err = startAgent(t, append([]string{"--grpc", addr}, args...)...); err == nil {
				break
			}
		}
		require.NoError(t, err)
		return running{p, "grpc://" + addr, func(ctx context.Context, opts ...transport.Option) (transport.Conn, error) {
			return transport.DialGRPC(ctx, addr, opts...)
		}}
	}},
}

// healthLog keeps every health report a connection received.
type healthLog struct {
	mu      sync.Mutex
	reports []*agentv2.HealthStatus
	changed chan struct{} // closed and replaced on every report
}

func newHealthLog() *healthLog { return &healthLog{changed: make(chan struct{})} }

func (h *healthLog) add(s *agentv2.HealthStatus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.reports = append(h.reports, s)
	close(h.changed)
	h.changed = make(chan struct{})
}

// wait returns the first report after the first `after` ones that satisfies ok.
func (h *healthLog) wait(t *testing.T, after int, ok func(*agentv2.HealthStatus) bool, within time.Duration) *agentv2.HealthStatus {
	t.Helper()
	deadline := time.After(within)
	for i := after; ; {
		h.mu.Lock()
		for ; i < len(h.reports); i++ {
			if ok(h.reports[i]) {
				r := h.reports[i]
				h.mu.Unlock()
				return r
			}
		}
		ch := h.changed
		h.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no matching health report within %v", within)
		}
	}
}

func (h *healthLog) len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.reports)
}

func dialAgent(t *testing.T, dial dialFunc) (transport.Conn, *healthLog) {
	t.Helper()
	health := newHealthLog()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := dial(ctx,
		transport.WithProxyID("interop-test", "0"),
		transport.WithHealthInterval(100*time.Millisecond),
		transport.WithHealthHandler(health.add),
		transport.WithCallTimeout(5*time.Second),
	)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = conn.Close(ctx)
	})
	return conn, health
}

func requestHeaders(corr, uri string, headers ...*agentv2.Header) *agentv2.ProxyToAgent {
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{CorrelationId: corr, RequestId: corr, ClientIp: "127.0.0.1", Protocol: "HTTP/1.1", Traceparent: &tp},
		Method:   "GET",
		Uri:      uri,
		Headers:  append([]*agentv2.Header{{Name: "host", Value: "example.test"}}, headers...),
	}}}
}

func bodyChunk(corr string, data string) *agentv2.ProxyToAgent {
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
		CorrelationId: corr, Data: []byte(data), IsLast: true,
	}}}
}

func assertBlocked(t *testing.T, resp *agentv2.AgentResponse, corr string) {
	t.Helper()
	require.NotNil(t, resp.GetBlock(), "want a block decision, got %v", resp)
	assert.EqualValues(t, 403, resp.GetBlock().GetStatus())
	assert.Contains(t, resp.GetAudit().GetTags(), "admin-blocked")
	assert.Equal(t, corr, resp.GetCorrelationId())
	assert.Empty(t, resp.GetResponseHeaders())
}

func assertAllowed(t *testing.T, resp *agentv2.AgentResponse, corr string) {
	t.Helper()
	require.NotNil(t, resp.GetAllow(), "want an allow decision, got %v", resp)
	assert.Equal(t, corr, resp.GetCorrelationId())
	require.Len(t, resp.GetResponseHeaders(), 1)
	set := resp.GetResponseHeaders()[0].GetSet()
	require.NotNil(t, set, "want a set header op, got %v", resp.GetResponseHeaders()[0])
	assert.Equal(t, "x-agent", set.GetName())
	assert.Equal(t, "python", set.GetValue())
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestPythonAgent(t *testing.T) {
	t.Parallel()
	requireDeps(t)
	for _, ep := range endpoints {
		t.Run(ep.name, func(t *testing.T) {
			t.Parallel()
			agent := ep.start(t)
			proc, dial := agent.proc, agent.dial
			conn, health := dialAgent(t, dial)

			t.Run("handshake", func(t *testing.T) {
				caps := conn.Capabilities()
				assert.EqualValues(t, 2, caps.GetProtocolVersion())
				assert.Equal(t, "python-agent", caps.GetAgentId())
				assert.True(t, caps.GetFeatures().GetEchoesEventId())
				assert.True(t, caps.GetFeatures().GetCancellation())
				assert.Len(t, caps.GetSupportedEvents(), 8)
				assert.EqualValues(t, 100, caps.GetHealthConfig().GetReportIntervalMs())
			})

			t.Run("health", func(t *testing.T) {
				first := health.wait(t, 0, func(*agentv2.HealthStatus) bool { return true }, 5*time.Second)
				assert.Equal(t, agentv2.HealthState_HEALTH_STATE_HEALTHY, first.GetState())
				assert.Equal(t, "python-agent", first.GetAgentId())
				assert.NotNil(t, first.GetLoad())
				// And again at the interval asked for.
				health.wait(t, 1, func(*agentv2.HealthStatus) bool { return true }, 5*time.Second)
			})

			t.Run("block and allow", func(t *testing.T) {
				ctx := ctxFor(t, 5*time.Second)
				resp, err := conn.Send(ctx, requestHeaders("blk-1", "/admin/users"))
				require.NoError(t, err)
				assertBlocked(t, resp, "blk-1")

				resp, err = conn.Send(ctx, requestHeaders("ok-1", "/index"))
				require.NoError(t, err)
				assertAllowed(t, resp, "ok-1")

				resp, err = conn.Send(ctx, bodyChunk("ok-1", "hello"))
				require.NoError(t, err)
				assert.NotNil(t, resp.GetAllow())
				assert.Equal(t, "ok-1", resp.GetCorrelationId())
			})

			t.Run("handler error", func(t *testing.T) {
				_, err := conn.Send(ctxFor(t, 5*time.Second), requestHeaders("fail-1", "/index", &agentv2.Header{Name: failHeader, Value: "1"}))
				require.Error(t, err)
				assert.Equal(t, agentwire.CodeInternal, agentwire.CodeOf(err), "%v", err)
				assert.True(t, agentwire.IsWireError(err), "%v", err)
			})

			t.Run("concurrent", func(t *testing.T) {
				ctx := ctxFor(t, 5*time.Second)
				var wg sync.WaitGroup
				for i := range 64 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						corr := fmt.Sprintf("conc-%d", i)
						// Odd requests take a little while, so answers come back out of order.
						var hs []*agentv2.Header
						if i%2 == 1 {
							hs = append(hs, &agentv2.Header{Name: delayHeader, Value: "20"})
						}
						uri := "/index"
						if i%3 == 0 {
							uri = "/admin"
						}
						resp, err := conn.Send(ctx, requestHeaders(corr, uri, hs...))
						if !assert.NoError(t, err) {
							return
						}
						if uri == "/admin" {
							assertBlocked(t, resp, corr)
						} else {
							assertAllowed(t, resp, corr)
						}
					}()
				}
				wg.Wait()
			})

			t.Run("cancel", func(t *testing.T) {
				ctx := ctxFor(t, 5*time.Second)
				errc := make(chan error, 1)
				go func() {
					_, err := conn.Send(ctx, requestHeaders("slow-1", "/index", &agentv2.Header{Name: delayHeader, Value: "30000"}))
					errc <- err
				}()
				// Wait until the agent holds the event.
				health.wait(t, health.len(), func(h *agentv2.HealthStatus) bool { return h.GetLoad().GetInFlight() == 1 }, 5*time.Second)
				n := health.len()
				require.NoError(t, conn.Cancel(ctx, &agentv2.CancelRequest{CorrelationId: "slow-1", Reason: agentv2.CancelReason_CANCEL_REASON_CLIENT_DISCONNECT}))
				select {
				case err := <-errc:
					assert.Equal(t, agentwire.CodeCanceled, agentwire.CodeOf(err), "%v", err)
				case <-time.After(5 * time.Second):
					t.Fatal("cancelled Send did not return")
				}
				// The agent stopped the handler rather than sleeping 30 s.
				health.wait(t, n, func(h *agentv2.HealthStatus) bool { return h.GetLoad().GetInFlight() == 0 }, 5*time.Second)

				// The connection carries on, the same correlation id included.
				resp, err := conn.Send(ctx, requestHeaders("slow-1", "/admin"))
				require.NoError(t, err)
				assertBlocked(t, resp, "slow-1")
				require.NoError(t, conn.Err())
				assert.Zero(t, conn.Status().UnknownResponses, "the cancelled event must not be answered")
			})

			t.Run("ping", func(t *testing.T) {
				rtt, err := conn.Ping(ctxFor(t, 5*time.Second))
				require.NoError(t, err)
				assert.Positive(t, rtt)
			})

			t.Run("unsupported version", func(t *testing.T) {
				_, err := dial(ctxFor(t, 5*time.Second), transport.WithProtocolVersions(1))
				require.Error(t, err)
				assert.ErrorIs(t, err, transport.ErrHandshakeRejected)
				assert.Equal(t, agentwire.CodeFailedPrecondition, agentwire.CodeOf(err))
				assert.Contains(t, err.Error(), "unsupported protocol versions")
				// The rejected connection did not disturb the others.
				_, err = conn.Ping(ctxFor(t, 5*time.Second))
				require.NoError(t, err)
			})

			t.Run("drain", func(t *testing.T) {
				ctx := ctxFor(t, 5*time.Second)
				n := health.len()
				require.NoError(t, conn.Notify(ctx, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Drain{
					Drain: &agentv2.DrainRequest{Reason: agentv2.DrainRequest_REASON_MAINTENANCE},
				}}))
				health.wait(t, n, func(h *agentv2.HealthStatus) bool {
					return h.GetState() == agentv2.HealthState_HEALTH_STATE_DRAINING
				}, 5*time.Second)
				// A draining agent still answers.
				resp, err := conn.Send(ctx, requestHeaders("drain-1", "/index"))
				require.NoError(t, err)
				assertAllowed(t, resp, "drain-1")
			})

			t.Run("sigterm", func(t *testing.T) {
				require.NoError(t, proc.cmd.Process.Signal(syscall.SIGTERM))
				select {
				case <-proc.exited:
					require.NoError(t, proc.err, "agent exit after SIGTERM; stderr:\n%s", proc.stderr.String())
				case <-time.After(5 * time.Second):
					t.Fatal("agent still running 5 s after SIGTERM")
				}
				select {
				case <-conn.Done():
				case <-time.After(2 * time.Second):
					t.Fatal("connection still open after the agent exited")
				}
			})
		})
	}
}

// TestPythonAgentKilled: killing the agent fails an in-flight call at once
// with Unavailable, not at its deadline.
func TestPythonAgentKilled(t *testing.T) {
	t.Parallel()
	requireDeps(t)
	for _, ep := range endpoints {
		t.Run(ep.name, func(t *testing.T) {
			t.Parallel()
			agent := ep.start(t)
			proc, dial := agent.proc, agent.dial
			conn, health := dialAgent(t, dial)
			ctx := ctxFor(t, 10*time.Second)
			errc := make(chan error, 1)
			go func() {
				_, err := conn.Send(ctx, requestHeaders("doomed", "/index", &agentv2.Header{Name: delayHeader, Value: "30000"}))
				errc <- err
			}()
			health.wait(t, 0, func(h *agentv2.HealthStatus) bool { return h.GetLoad().GetInFlight() == 1 }, 5*time.Second)
			require.NoError(t, proc.cmd.Process.Kill())
			start := time.Now()
			select {
			case err := <-errc:
				require.Error(t, err)
				assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err), "%v", err)
				assert.Less(t, time.Since(start), 4*time.Second)
			case <-time.After(5 * time.Second):
				t.Fatal("in-flight Send still waiting 5 s after the agent was killed")
			}
		})
	}
}

// TestPythonAgentFlowControl: the agent pauses the connection when its
// in-flight events reach --max-concurrency, resumes once they drain, and
// answers events beyond its queue with RESOURCE_EXHAUSTED.
func TestPythonAgentFlowControl(t *testing.T) {
	t.Parallel()
	requireDeps(t)
	for _, ep := range endpoints {
		t.Run(ep.name, func(t *testing.T) {
			t.Parallel()
			agent := ep.start(t, "--max-concurrency", "4", "--max-queue", "2")
			conn, _ := dialAgent(t, agent.dial)
			assert.EqualValues(t, 4, conn.Capabilities().GetLimits().GetMaxConcurrency())
			ctx := ctxFor(t, 10*time.Second)
			const n = 8
			errs := make(chan error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := conn.Send(ctx, requestHeaders(fmt.Sprintf("fc-%d", i), "/index",
						&agentv2.Header{Name: delayHeader, Value: "1000"}))
					errs <- err
				}()
			}
			require.Eventually(t, func() bool { return conn.Paused("any") }, 5*time.Second, 5*time.Millisecond,
				"agent did not pause the connection")
			wg.Wait()
			close(errs)
			var ok, exhausted int
			for err := range errs {
				switch agentwire.CodeOf(err) {
				case agentwire.CodeResourceExhausted:
					exhausted++
				default:
					if assert.NoError(t, err) {
						ok++
					}
				}
			}
			assert.Equal(t, 6, ok, "max-concurrency + max-queue events are answered")
			assert.Equal(t, 2, exhausted, "the rest are refused")
			require.Eventually(t, func() bool { return !conn.Paused("any") }, 5*time.Second, 5*time.Millisecond,
				"agent did not resume the connection")
		})
	}
}

// TestPythonAgentConformance runs the conformance kit (agenttest) against
// the agent on both transports, with the policy it documents.
func TestPythonAgentConformance(t *testing.T) {
	t.Parallel()
	requireDeps(t)
	for _, ep := range endpoints {
		t.Run(ep.name, func(t *testing.T) {
			t.Parallel()
			agent := ep.start(t)
			results, err := agenttest.Run(ctxFor(t, 20*time.Second), agent.url,
				agenttest.WithBlockPath("/admin"),
				agenttest.WithBlockStatus(403),
				agenttest.WithMutationHeader("x-agent"),
				agenttest.WithCheckTimeout(5*time.Second),
			)
			require.NoError(t, err)
			var table strings.Builder
			require.NoError(t, agenttest.WriteTable(&table, results))
			for _, r := range results {
				assert.False(t, r.Failed(), "check %s failed", r.Name)
			}
			assert.True(t, agenttest.Passed(results), "conformance:\n%s", table.String())
			if t.Failed() || testing.Verbose() {
				t.Logf("conformance on %s:\n%s", agent.url, table.String())
			}
		})
	}
}

// TestPythonAgentFrames speaks raw frames to the Unix socket: unknown frame
// types are skipped, malformed and mismatched frames close the connection.
func TestPythonAgentFrames(t *testing.T) {
	t.Parallel()
	requireDeps(t)
	dir, err := os.MkdirTemp("", "aw")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "agent.sock")
	_, err = startAgent(t, "--uds", path)
	require.NoError(t, err)

	// open connects and handshakes, returning the socket and a frame reader.
	open := func(t *testing.T) (net.Conn, *codec.Reader) {
		t.Helper()
		nc, err := net.Dial("unix", path)
		require.NoError(t, err)
		t.Cleanup(func() { _ = nc.Close() })
		require.NoError(t, nc.SetDeadline(time.Now().Add(5*time.Second)))
		hs := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Handshake{Handshake: &agentv2.HandshakeRequest{
			SupportedVersions: []uint32{2}, ProxyId: "raw",
		}}}
		require.NoError(t, codec.WriteFrameTo(nc, hs, 0))
		r := codec.NewReader(nc, 0)
		var msg agentv2.AgentToProxy
		require.NoError(t, r.ReadAgentToProxy(&msg))
		require.True(t, msg.GetHandshake().GetSuccess(), "handshake: %v", &msg)
		return nc, r
	}
	// expectClosed reads until the agent closes the connection.
	expectClosed := func(t *testing.T, r *codec.Reader) {
		t.Helper()
		var msg agentv2.AgentToProxy
		for {
			err := r.ReadAgentToProxy(&msg)
			if err == nil || errors.Is(err, codec.ErrUnknownFrameType) {
				continue // health reports
			}
			var ne net.Error
			require.False(t, errors.As(err, &ne) && ne.Timeout(), "agent kept the connection open: %v", err)
			return
		}
	}

	t.Run("unknown type skipped", func(t *testing.T) {
		t.Parallel()
		nc, r := open(t)
		_, err := nc.Write([]byte{0, 0, 0, 4, 0x7f, 1, 2, 3})
		require.NoError(t, err)
		ping := &agentv2.ProxyToAgent{EventId: 9, Message: &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{Sequence: 42}}}
		require.NoError(t, codec.WriteFrameTo(nc, ping, 0))
		var msg agentv2.AgentToProxy
		for {
			require.NoError(t, r.ReadAgentToProxy(&msg))
			if msg.GetPong() != nil {
				break
			}
		}
		assert.EqualValues(t, 42, msg.GetPong().GetSequence())
		assert.EqualValues(t, 9, msg.GetEventId())
	})

	t.Run("event ids echoed in order", func(t *testing.T) {
		t.Parallel()
		nc, r := open(t)
		// Three events of one request, the first slow: answered in order,
		// each with its own event id.
		for i, ev := range []*agentv2.ProxyToAgent{
			requestHeaders("ord", "/index", &agentv2.Header{Name: delayHeader, Value: "50"}),
			bodyChunk("ord", "a"),
			bodyChunk("ord", "b"),
		} {
			ev.EventId = uint64(100 + i)
			require.NoError(t, codec.WriteFrameTo(nc, ev, 0))
		}
		var got []uint64
		var msg agentv2.AgentToProxy
		for len(got) < 3 {
			require.NoError(t, r.ReadAgentToProxy(&msg))
			if resp := msg.GetResponse(); resp != nil {
				assert.Equal(t, "ord", resp.GetCorrelationId())
				got = append(got, msg.GetEventId())
			}
		}
		assert.Equal(t, []uint64{100, 101, 102}, got)
	})

	t.Run("malformed payload closes", func(t *testing.T) {
		t.Parallel()
		nc, r := open(t)
		_, err := nc.Write([]byte{0, 0, 0, 4, 0x10, 0xff, 0xff, 0xff})
		require.NoError(t, err)
		expectClosed(t, r)
	})

	t.Run("mismatched type closes", func(t *testing.T) {
		t.Parallel()
		nc, r := open(t)
		ping := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{Sequence: 1}}}
		payload, err := ping.MarshalVT()
		require.NoError(t, err)
		frame := append([]byte{0, 0, 0, byte(len(payload) + 1), 0x10}, payload...)
		_, err = nc.Write(frame)
		require.NoError(t, err)
		expectClosed(t, r)
	})

	t.Run("zero length closes", func(t *testing.T) {
		t.Parallel()
		nc, r := open(t)
		_, err := nc.Write([]byte{0, 0, 0, 0})
		require.NoError(t, err)
		expectClosed(t, r)
	})

	t.Run("event before handshake closes", func(t *testing.T) {
		t.Parallel()
		nc, err := net.Dial("unix", path)
		require.NoError(t, err)
		t.Cleanup(func() { _ = nc.Close() })
		require.NoError(t, nc.SetDeadline(time.Now().Add(5*time.Second)))
		require.NoError(t, codec.WriteFrameTo(nc, requestHeaders("early", "/"), 0))
		n, err := nc.Read(make([]byte, 1))
		assert.Zero(t, n, "agent answered an event sent before the handshake")
		assert.ErrorIs(t, err, io.EOF)
	})
}

const zentinelService = "zentinel.agent.v2.AgentServiceV2"

// TestPythonAgentGRPC covers what only gRPC has: the unary ProcessEvent, the
// status a protocol error ends the stream with, and a second service name.
func TestPythonAgentGRPC(t *testing.T) {
	t.Parallel()
	requireDeps(t)
	var addr string
	var err error
	for range 3 {
		addr = freePort(t)
		if _, err = startAgent(t, "--grpc", addr, "--service-name", zentinelService); err == nil {
			break
		}
	}
	require.NoError(t, err)
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = cc.Close() })
	client := agentv2.NewAgentServiceV2Client(cc)

	t.Run("ProcessEvent", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t, 5*time.Second)
		ev := requestHeaders("unary-1", "/admin")
		ev.EventId = 77
		out, err := client.ProcessEvent(ctx, ev)
		require.NoError(t, err)
		assert.EqualValues(t, 77, out.GetEventId())
		assertBlocked(t, out.GetResponse(), "unary-1")

		out, err = client.ProcessEvent(ctx, requestHeaders("unary-2", "/"))
		require.NoError(t, err)
		assertAllowed(t, out.GetResponse(), "unary-2")
	})

	t.Run("service alias", func(t *testing.T) {
		t.Parallel()
		ctx := ctxFor(t, 5*time.Second)
		conn, err := transport.DialGRPC(ctx, addr, transport.WithServiceName(zentinelService))
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
		resp, err := conn.Send(ctx, requestHeaders("alias-1", "/admin"))
		require.NoError(t, err)
		assertBlocked(t, resp, "alias-1")
	})

	t.Run("event before handshake", func(t *testing.T) {
		t.Parallel()
		stream, err := client.ProcessStream(ctxFor(t, 5*time.Second))
		require.NoError(t, err)
		require.NoError(t, stream.Send(requestHeaders("early", "/")))
		_, err = stream.Recv()
		require.Error(t, err)
		assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
	})
}
