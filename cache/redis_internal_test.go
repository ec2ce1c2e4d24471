package cache

import (
	"testing"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// FuzzDecodeEntry: whatever Redis holds under a key, decoding it returns
// an entry or an error, never a panic, and what it encodes decodes back.
func FuzzDecodeEntry(f *testing.F) {
	e := &Entry{Response: &agentv2.AgentResponse{CorrelationId: "c", Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}}},
		Expires: time.UnixMilli(1000), StaleUntil: time.UnixMilli(2000), Tags: []string{"a", "bb"}, BodyNotInspected: true}
	b, err := encodeEntry(e, []uint64{1, 2, 3})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte{})
	f.Add(b[:25])
	f.Fuzz(func(t *testing.T, b []byte) {
		e, gens, err := decodeEntry(b)
		if err != nil {
			return
		}
		if len(gens) != len(e.Tags)+1 {
			t.Fatalf("%d generations for %d tags", len(gens), len(e.Tags))
		}
		again, err := encodeEntry(e, gens)
		if err != nil {
			t.Fatal(err)
		}
		e2, gens2, err := decodeEntry(again)
		if err != nil || len(gens2) != len(gens) || !e2.Response.EqualVT(e.Response) || !e2.Expires.Equal(e.Expires) {
			t.Fatalf("re-encoded entry differs: %v", err)
		}
	})
}
