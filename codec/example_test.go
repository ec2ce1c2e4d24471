package codec_test

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// A proxy writes a request-headers event; the agent reads it back, skipping
// frame types it does not know.
func ExampleReader() {
	var conn bytes.Buffer
	event := &agentv2.ProxyToAgent{
		EventId: 1,
		Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
			Metadata: &agentv2.RequestMetadata{CorrelationId: "req-1"},
			Method:   "GET",
			Uri:      "/login",
		}},
	}
	conn.Write([]byte{0, 0, 0, 3, 0x7f, 'h', 'i'}) // a frame type from a newer proxy
	if err := codec.WriteFrameTo(&conn, event, 0); err != nil {
		panic(err)
	}
	fmt.Printf("frame: % x\n", conn.Bytes()[7:12])

	r := codec.NewReader(&conn, codec.DefaultMaxFrameSize)
	for {
		var m agentv2.ProxyToAgent
		err := r.ReadProxyToAgent(&m)
		if codec.IsFatal(err) {
			fmt.Println("stop:", err)
			return
		}
		if err != nil {
			fmt.Println("skip:", err)
			continue
		}
		ev := m.GetRequestHeaders()
		fmt.Println(agentv2.ProxyToAgentFrameName(m.FrameType()), m.EventId, ev.Method, ev.Uri, ev.Metadata.CorrelationId)
	}
	// Output:
	// frame: 00 00 00 1c 10
	// skip: unimplemented: codec: unknown frame type: type 0x7f, 2 bytes skipped
	// request_headers 1 GET /login req-1
	// stop: unavailable: EOF
}

// Many goroutines answer events through one Writer; its flusher batches
// their frames into few writes.
func ExampleWriter() {
	pr, pw := io.Pipe()
	w := codec.NewWriter(pw, 0, 0)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	go func() {
		for id := uint64(1); id <= 3; id++ {
			resp := &agentv2.AgentToProxy{
				EventId: id,
				Message: &agentv2.AgentToProxy_Response{Response: &agentv2.AgentResponse{
					CorrelationId: fmt.Sprintf("req-%d", id),
					Decision:      &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}},
				}},
			}
			if err := w.Write(ctx, resp); err != nil {
				panic(err)
			}
		}
	}()

	r := codec.NewReader(pr, 0)
	for range 3 {
		var m agentv2.AgentToProxy
		if err := r.ReadAgentToProxy(&m); err != nil {
			panic(err)
		}
		fmt.Println(m.EventId, m.GetResponse().CorrelationId, m.GetResponse().GetAllow() != nil)
	}
	cancel()
	fmt.Println("run:", <-done)
	// Output:
	// 1 req-1 true
	// 2 req-2 true
	// 3 req-3 true
	// run: <nil>
}
