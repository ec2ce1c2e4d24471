package codec_test

import (
	"bytes"
	"fmt"

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
