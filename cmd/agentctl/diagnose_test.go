package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire/codec"
	"github.com/agentwire/agentwire/examples/waf-agent/waf"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

func TestEndpointHints(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "plain")
	require.NoError(t, os.WriteFile(file, []byte("x"), 0o600))
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"probe", "127.0.0.1:7070"}, exitUsage, `did you mean grpc://127.0.0.1:7070 (or http://127.0.0.1:7070 for Connect)?`},
		{[]string{"probe", file}, exitUsage, `did you mean unix://` + file + `?`},
		{[]string{"probe", "unix://" + file}, exitUnreachable, `not a socket but a regular file`},
		{[]string{"probe", "unix://" + filepath.Dir(file)}, exitUnreachable, `not a socket but a directory`},
		{[]string{"probe", "grpc://127.0.0.1:1", "-server-name", "x"}, exitUsage, `TLS flags given for grpc://127.0.0.1:1, a plaintext endpoint`},
		{[]string{"probe", "grpcs://127.0.0.1:1", "-cert", file}, exitUsage, `-cert and -key go together`},
		{[]string{"probe", "grpcs://127.0.0.1:1", "-cacert", file}, exitUsage, `no PEM certificate in it`},
	}
	for _, tc := range cases {
		code, out, errOut := runBinary(t, tc.args...)
		assert.Equal(t, tc.code, code, "%q: %s", tc.args, errOut)
		assert.Empty(t, out, "%q", tc.args)
		assert.Contains(t, errOut, tc.want, "%q", tc.args)
	}
}

// TestHTTP1Server: a web server where an agent was expected is named as
// such, not reported as a frame error.
func TestHTTP1Server(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		assert.ErrorIs(t, <-done, http.ErrServerClosed)
	})
	for _, scheme := range []string{"grpc://", "http://"} {
		ep := scheme + ln.Addr().String()
		code, _, errOut := runBinary(t, "probe", ep, "-timeout", "3s")
		assert.Equal(t, exitIncompatible, code, errOut)
		assert.Contains(t, errOut, "the server at "+ep+" speaks HTTP/1.1, not gRPC (HTTP/2)")
	}
}

// TestStalledAgent: a peer that accepts and never answers is unreachable
// within -timeout, and the message says which flag to raise.
func TestStalledAgent(t *testing.T) {
	t.Parallel()
	path := socketPath(t)
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc) // held open, never answered
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
		for _, nc := range conns {
			_ = nc.Close()
		}
	})
	code, _, errOut := runBinary(t, "probe", "unix://"+path, "-timeout", "300ms")
	assert.Equal(t, exitUnreachable, code, errOut)
	assert.Contains(t, errOut, "within -timeout 300ms")
	assert.Contains(t, errOut, "raise -timeout")
}

// minimalAgent is a third-party agent that declares nothing: a handshake
// with no capabilities, no health reports, no event-id echo. It answers
// pings and allows every event.
func minimalAgent(t *testing.T) string {
	t.Helper()
	path := socketPath(t)
	ln, err := net.Listen("unix", path)
	require.NoError(t, err)
	var wg sync.WaitGroup
	serve := func(nc net.Conn) {
		defer nc.Close()
		r := codec.NewReader(nc, 0)
		for {
			var m agentv2.ProxyToAgent
			if err := r.ReadProxyToAgent(&m); err != nil {
				return
			}
			var out *agentv2.AgentToProxy
			switch {
			case m.GetHandshake() != nil:
				out = &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{Handshake: &agentv2.HandshakeResponse{ProtocolVersion: 2, Success: true}}}
			case m.GetPing() != nil:
				out = &agentv2.AgentToProxy{EventId: m.GetEventId(), Message: &agentv2.AgentToProxy_Pong{Pong: &agentv2.Pong{Sequence: m.GetPing().GetSequence()}}}
			case m.GetRequestHeaders() != nil:
				out = &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Response{Response: &agentv2.AgentResponse{
					CorrelationId: m.GetRequestHeaders().GetMetadata().GetCorrelationId(), Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}}}}
			default:
				continue
			}
			if err := codec.WriteFrameTo(nc, out, 0); err != nil {
				return
			}
		}
	}
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serve(nc) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
	return "unix://" + path
}

func TestMinimalAgent(t *testing.T) {
	t.Parallel()
	ep := minimalAgent(t)
	code, out, errOut := runBinary(t, "probe", ep, "-wait", "200ms")
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, `(?m)^events\s+\(none declared\)$`, out)
	assert.Regexp(t, `(?m)^features\s+\(none\)$`, out)
	assert.Regexp(t, `(?m)^limits\s+\(none declared\)$`, out)
	assert.Regexp(t, `(?m)^health\s+no report within 200ms$`, out)

	code, out, errOut = runBinary(t, "send", ep, "-uri", "/x", "-fail-on-block")
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, `(?m)^  decision\s+ALLOW$`, out)
}

func TestFailOnBlock(t *testing.T) {
	t.Parallel()
	a := startGoAgent(t, &waf.Handler{})
	code, out, errOut := runBinary(t, "send", a.unixEP, "-uri", "/admin/users", "-fail-on-block")
	assert.Equal(t, exitBlocked, code, errOut)
	assert.Regexp(t, `(?m)^  decision\s+BLOCK 403$`, out)
	assert.Contains(t, errOut, "the request was not allowed")
}

// FuzzRender: any handshake, health report, metrics report or response
// the schema allows renders without a panic (the probe once dereferenced
// absent limits).
func FuzzRender(f *testing.F) {
	for _, m := range []proto.Message{
		&agentv2.HandshakeResponse{Success: true},
		&agentv2.HandshakeResponse{Capabilities: &agentv2.AgentCapabilities{Features: &agentv2.AgentFeatures{}}},
		&agentv2.HandshakeResponse{Capabilities: &agentv2.AgentCapabilities{Limits: &agentv2.AgentLimits{MaxMemory: proto.Uint64(1)}}},
	} {
		b, err := proto.Marshal(m)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var hs agentv2.HandshakeResponse
		if proto.Unmarshal(b, &hs) == nil {
			caps := hs.GetCapabilities()
			_ = eventNames(caps.GetSupportedEvents()) + features(caps.GetFeatures()) + limits(caps.GetLimits())
			_ = rawProto(caps)
		}
		var h agentv2.HealthStatus
		if proto.Unmarshal(b, &h) == nil {
			_ = healthLine(&h)
		}
		var m agentv2.MetricsReport
		if proto.Unmarshal(b, &m) == nil {
			_ = metricsLine(&m)
		}
		var r agentv2.AgentResponse
		if proto.Unmarshal(b, &r) == nil {
			describeResponse(func(string, string, ...any) {}, &r)
		}
	})
}

func TestDescribeErr(t *testing.T) {
	t.Parallel()
	err := errors.New(`unavailable: transport: agent connection lost: unavailable: rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial unix /x: connect: connection refused"`)
	assert.Equal(t, "agent connection lost: dial unix /x: connect: connection refused", describeErr(err))
	assert.Equal(t, "unexpected EOF", describeErr(io.ErrUnexpectedEOF))
}
