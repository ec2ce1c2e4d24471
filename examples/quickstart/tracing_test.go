package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/agentwire/agentwire/internal/jaegertest"
)

// TestQuickstartTraces runs the quickstart exporting to a real Jaeger:
// its 7 requests are 7 traces, each holding spans of both services.
func TestQuickstartTraces(t *testing.T) {
	j := jaegertest.Start(t, jaegertest.Binary(t))
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+j.OTLP)
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	type jtrace struct {
		TraceID   string `json:"traceID"`
		Processes map[string]struct {
			ServiceName string `json:"serviceName"`
		} `json:"processes"`
	}
	traces := func(svc string) []jtrace {
		resp, err := http.Get(j.Query + "/api/traces?limit=100&lookback=1h&service=" + svc)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Data []jtrace }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return body.Data
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(traces(proxyService)) < 7 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let any stray trace arrive too
	for _, svc := range []string{proxyService, agentService} {
		ts := traces(svc)
		if len(ts) != 7 {
			t.Errorf("%s: %d traces, want one per request (7)", svc, len(ts))
		}
		for _, tr := range ts {
			names := map[string]bool{}
			for _, p := range tr.Processes {
				names[p.ServiceName] = true
			}
			if !names[proxyService] || !names[agentService] {
				t.Errorf("trace %s of %s holds services %v, want both", tr.TraceID, svc, names)
			}
		}
	}
}
