package agenttest

import (
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// misbehaviour selects one way the raw-frames fake agent breaks the
// protocol; the zero value is a conforming agent.
type misbehaviour struct {
	wrongCorrelation bool // answers with another correlation id
	noPong           bool // ignores pings
	noHealth         bool // advertises health reporting, never reports
	anyVersion       bool // accepts a handshake without version 2
	emptyAgentID     bool // declares no agent id
	keepMalformed    bool // skips undecodable frames instead of closing
	closeOnUnknown   bool // drops the connection on an unknown frame type
	allowAll         bool // never blocks
	readOversize     bool // waits for an oversize frame's payload
	closeOnCancel    bool // drops the connection when a request is cancelled
}

const fakeMutationHeader = "x-fake-agent"

// fakeAgent is a minimal agent written straight on the frame codec, so the
// suite can be tested against behaviour the SDK would never produce.
type fakeAgent struct {
	t    *testing.T
	bad  misbehaviour
	path string
	ln   net.Listener

	wg    sync.WaitGroup
	mu    sync.Mutex // mu guards conns and closed
	conns map[net.Conn]struct{}
}

func startFakeAgent(t *testing.T, bad misbehaviour) *fakeAgent {
	t.Helper()
	path := socketPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	a := &fakeAgent{t: t, bad: bad, path: path, ln: ln, conns: make(map[net.Conn]struct{})}
	a.wg.Go(a.accept)
	t.Cleanup(a.close)
	return a
}

func (a *fakeAgent) endpoint() string { return "unix://" + a.path }

func (a *fakeAgent) accept() {
	for {
		nc, err := a.ln.Accept()
		if err != nil {
			return
		}
		a.mu.Lock()
		if a.conns == nil {
			a.mu.Unlock()
			_ = nc.Close()
			return
		}
		a.conns[nc] = struct{}{}
		a.mu.Unlock()
		a.wg.Go(func() {
			defer func() {
				a.mu.Lock()
				delete(a.conns, nc)
				a.mu.Unlock()
				_ = nc.Close()
			}()
			a.serve(nc)
		})
	}
}

func (a *fakeAgent) close() {
	_ = a.ln.Close()
	a.mu.Lock()
	for nc := range a.conns {
		_ = nc.Close()
	}
	a.conns = nil
	a.mu.Unlock()
	a.wg.Wait()
}

// fakeConn is one served connection.
type fakeConn struct {
	nc   net.Conn
	wmu  sync.Mutex // wmu serialises writes
	done chan struct{}
}

func (c *fakeConn) write(m *agentv2.AgentToProxy) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = codec.WriteFrameTo(c.nc, m, 0)
}

func (a *fakeAgent) serve(nc net.Conn) {
	c := &fakeConn{nc: nc, done: make(chan struct{})}
	defer close(c.done)
	maxFrame := 0
	if a.bad.readOversize {
		maxFrame = 1 << 30
	}
	r := codec.NewReader(nc, maxFrame)
	var hello agentv2.ProxyToAgent
	if err := r.ReadProxyToAgent(&hello); err != nil || hello.GetHandshake() == nil {
		return
	}
	hs := hello.GetHandshake()
	if !slices.Contains(hs.GetSupportedVersions(), 2) && !a.bad.anyVersion {
		msg := "fake agent speaks protocol version 2 only"
		c.write(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{Handshake: &agentv2.HandshakeResponse{
			ProtocolVersion: 2, Success: false, Error: &msg,
		}}})
		return
	}
	interval := time.Duration(hs.GetHealthReportIntervalMs()) * time.Millisecond
	if interval == 0 {
		interval = 10 * time.Second
	}
	id := "fake"
	if a.bad.emptyAgentID {
		id = ""
	}
	c.write(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{Handshake: &agentv2.HandshakeResponse{
		ProtocolVersion: 2, Success: true, Encoding: "protobuf",
		Capabilities: &agentv2.AgentCapabilities{
			ProtocolVersion: 2, AgentId: id, Name: "fake agent", Version: "0",
			SupportedEvents: []agentv2.EventType{
				agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS, agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK,
				agentv2.EventType_EVENT_TYPE_RESPONSE_HEADERS, agentv2.EventType_EVENT_TYPE_RESPONSE_BODY_CHUNK,
				agentv2.EventType_EVENT_TYPE_REQUEST_COMPLETE, agentv2.EventType_EVENT_TYPE_WEBSOCKET_FRAME,
				agentv2.EventType_EVENT_TYPE_GUARDRAIL_INSPECT, agentv2.EventType_EVENT_TYPE_CONFIGURE,
			},
			Features:     &agentv2.AgentFeatures{EchoesEventId: true, HealthReporting: true, Cancellation: true},
			HealthConfig: &agentv2.HealthConfig{ReportIntervalMs: uint32(interval / time.Millisecond)},
		},
	}}})
	if !a.bad.noHealth {
		a.wg.Go(func() { c.reportHealth(id, interval) })
	}
	for {
		t, payload, err := r.ReadFrame()
		if err != nil {
			return
		}
		var m agentv2.ProxyToAgent
		if err := codec.Decode(&m, t, payload, agentv2.IsProxyToAgentFrame, false); err != nil {
			switch {
			case errors.Is(err, codec.ErrUnknownFrameType) && !a.bad.closeOnUnknown:
				continue
			case errors.Is(err, codec.ErrMalformed) && a.bad.keepMalformed:
				continue
			}
			return
		}
		if m.GetCancel() != nil && a.bad.closeOnCancel {
			return
		}
		a.handle(c, &m)
	}
}

func (c *fakeConn) reportHealth(id string, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		c.write(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Health{Health: &agentv2.HealthStatus{
			AgentId: id, State: agentv2.HealthState_HEALTH_STATE_HEALTHY, TimestampMs: uint64(time.Now().UnixMilli()),
		}}})
		select {
		case <-tick.C:
		case <-c.done:
			return
		}
	}
}

func (a *fakeAgent) handle(c *fakeConn, m *agentv2.ProxyToAgent) {
	if p := m.GetPing(); p != nil {
		if !a.bad.noPong {
			c.write(&agentv2.AgentToProxy{EventId: m.GetEventId(), Message: &agentv2.AgentToProxy_Pong{Pong: &agentv2.Pong{
				Sequence: p.GetSequence(), PingTimestampMs: p.GetTimestampMs(), TimestampMs: uint64(time.Now().UnixMilli()),
			}}})
		}
		return
	}
	corr, ok := eventCorrelation(m)
	if !ok {
		return // cancel, drain, shutdown: nothing to answer
	}
	resp := &agentv2.AgentResponse{CorrelationId: corr, Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}}
	if rh := m.GetRequestHeaders(); rh != nil {
		if strings.HasPrefix(rh.GetUri(), "/admin") && !a.bad.allowAll {
			resp.Decision = &agentv2.AgentResponse_Block{Block: &agentv2.BlockDecision{Status: 403}}
		} else {
			resp.ResponseHeaders = []*agentv2.HeaderOp{{Operation: &agentv2.HeaderOp_Set{Set: &agentv2.Header{Name: fakeMutationHeader, Value: "1"}}}}
		}
	}
	if a.bad.wrongCorrelation {
		resp.CorrelationId += "-wrong"
	}
	c.write(&agentv2.AgentToProxy{EventId: m.GetEventId(), Message: &agentv2.AgentToProxy_Response{Response: resp}})
}

// eventCorrelation is written independently of ProxyToAgent.EventCorrelationID so
// the fake does not share code with what it tests.
func eventCorrelation(m *agentv2.ProxyToAgent) (string, bool) {
	switch {
	case m.GetRequestHeaders() != nil:
		return m.GetRequestHeaders().GetMetadata().GetCorrelationId(), true
	case m.GetRequestBodyChunk() != nil:
		return m.GetRequestBodyChunk().GetCorrelationId(), true
	case m.GetResponseHeaders() != nil:
		return m.GetResponseHeaders().GetCorrelationId(), true
	case m.GetResponseBodyChunk() != nil:
		return m.GetResponseBodyChunk().GetCorrelationId(), true
	case m.GetRequestComplete() != nil:
		return m.GetRequestComplete().GetCorrelationId(), true
	case m.GetWebsocketFrame() != nil:
		return m.GetWebsocketFrame().GetCorrelationId(), true
	case m.GetGuardrail() != nil:
		return m.GetGuardrail().GetCorrelationId(), true
	case m.GetConfigure() != nil:
		return "", true
	}
	return "", false
}
