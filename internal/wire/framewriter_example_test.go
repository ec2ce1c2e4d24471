package wire_test

import (
	"context"
	"fmt"
	"io"

	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire"
)

// Many goroutines answer events through one FrameWriter; its flusher
// batches their frames into few writes.
func ExampleFrameWriter() {
	pr, pw := io.Pipe()
	w := wire.NewFrameWriter(pw, 0, 0)
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
