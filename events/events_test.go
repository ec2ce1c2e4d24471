package events_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/events"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
)

var clock = events.WithClock(func() time.Time { return time.UnixMilli(1_700_000_000_000) })

func TestRequestHeaders(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodPost, "https://shop.example/cart?item=1%202", nil)
	r.RemoteAddr = "203.0.113.9:51234"
	r.Header.Add("X-Request-Id", "req-7")
	r.Header.Add("Accept", "text/html")
	r.Header.Add("Accept", "application/json")
	r.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, ServerName: "shop.example"}

	got := events.RequestHeaders(r, "c1", clock, events.WithRoute("shop", "shop-v2"))
	want := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{
			CorrelationId: "c1", RequestId: "req-7", ClientIp: "203.0.113.9", ClientPort: 51234,
			ServerName: proto.String("shop.example"), Protocol: "HTTP/1.1", TlsVersion: proto.String("TLS 1.3"),
			RouteId: proto.String("shop"), UpstreamId: proto.String("shop-v2"), TimestampMs: 1_700_000_000_000,
		},
		Method: "POST", Uri: "https://shop.example/cart?item=1%202", HttpVersion: "HTTP/1.1",
		Headers: []*agentv2.Header{
			{Name: "Host", Value: "shop.example"},
			{Name: "Accept", Value: "text/html"}, {Name: "Accept", Value: "application/json"},
			{Name: "X-Request-Id", Value: "req-7"},
		},
	}}}
	assertProto(t, want, got)
	assert.Equal(t, agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS, got.EventType())
	cid, ok := got.EventCorrelationID()
	assert.True(t, ok)
	assert.Equal(t, "c1", cid)
}

func TestRequestHeadersPlain(t *testing.T) {
	t.Parallel()
	r := httptest.NewRequest(http.MethodGet, "/a?b=c", nil)
	r.RemoteAddr = "@" // a Unix-socket peer has no host:port
	md := events.RequestHeaders(r, "c2", clock).GetRequestHeaders().GetMetadata()
	assert.Equal(t, "c2", md.GetRequestId(), "no X-Request-Id: the correlation id")
	assert.Equal(t, "@", md.GetClientIp())
	assert.Nil(t, md.TlsVersion)
	assert.Nil(t, md.RouteId)
	assert.Equal(t, "example.com", md.GetServerName())
}

func TestBodyAndCompletion(t *testing.T) {
	t.Parallel()
	data := []byte("hello")
	ch := events.RequestBodyChunk("c", data, events.Chunk{Index: 2, Last: true, Offset: 10, Total: 15}, clock).GetRequestBodyChunk()
	assert.Equal(t, uint32(2), ch.GetChunkIndex())
	assert.True(t, ch.GetIsLast())
	assert.Equal(t, uint64(15), ch.GetBytesTransferred())
	assert.Equal(t, uint64(15), ch.GetTotalSize())
	unknown := events.ResponseBodyChunk("c", data, events.Chunk{Total: -1}).GetResponseBodyChunk()
	assert.Nil(t, unknown.TotalSize, "a negative total is an unknown size")

	done := events.RequestComplete("c", events.Completion{Status: 502, Duration: 1500 * time.Millisecond, Err: errors.New("upstream reset")}).GetRequestComplete()
	assert.Equal(t, uint64(1500), done.GetDurationMs())
	assert.Equal(t, "upstream reset", done.GetError())
	assert.Nil(t, done.Upstream)

	rh := events.ResponseHeaders("c", 404, http.Header{"B": {"2"}, "A": {"1"}}).GetResponseHeaders()
	assert.Equal(t, uint32(404), rh.GetStatusCode())
	assert.Equal(t, "A", rh.GetHeaders()[0].GetName())
	assert.Nil(t, events.Configure("{}", "").GetConfigure().ConfigVersion)
	assert.Nil(t, events.Guardrail("c", agentv2.GuardrailContentType_GUARDRAIL_CONTENT_TYPE_PROMPT, "hi", "").GetGuardrail().Model)
	assert.Equal(t, agentv2.EventType_EVENT_TYPE_WEBSOCKET_FRAME,
		events.WebSocketFrame("c", true, agentv2.WebSocketFrameEvent_FRAME_TYPE_TEXT, data).EventType())
}

// seen records the request headers an agent received.
type seen struct {
	agent.Base
	got chan *agentv2.RequestHeadersEvent
}

func (s *seen) RequestHeaders(_ context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	s.got <- proto.Clone(ev).(*agentv2.RequestHeadersEvent)
	return agent.Block(403, ""), nil
}

// TestThroughAnAgent sends a built event to a real agent on a Unix socket:
// it arrives as built, and its decision comes back.
func TestThroughAnAgent(t *testing.T) {
	t.Parallel()
	h := &seen{got: make(chan *agentv2.RequestHeadersEvent, 1)}
	srv, err := agent.NewServer(h)
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "a.sock")
	ln, err := srv.ListenUnix(path)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.ServeUnix(ctx, ln) }()
	defer func() {
		srv.Close()
		assert.NoError(t, <-served)
	}()
	conn, err := transport.Dial(ctx, "unix://"+path)
	require.NoError(t, err)
	defer func() { assert.NoError(t, conn.Close(ctx)) }()

	r := httptest.NewRequest(http.MethodGet, "/admin", nil)
	ev := events.RequestHeaders(r, "c9", clock)
	resp, err := conn.Send(ctx, ev)
	require.NoError(t, err)
	assert.Equal(t, uint32(403), resp.GetBlock().GetStatus())
	assertProto(t, ev.GetRequestHeaders(), <-h.got)
}

func assertProto(t *testing.T, want, got proto.Message) {
	t.Helper()
	if !proto.Equal(want, got) {
		t.Errorf("got\n%s\nwant\n%s", prototext.Format(got), prototext.Format(want))
	}
}
