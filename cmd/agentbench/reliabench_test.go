package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// TestReliabilityRows runs issue 23's quick rows end to end: the plain
// pool, failover and a 10% shadow to a second agent process, each request
// six events, with ratios to the plain pool and the targets.
func TestReliabilityRows(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Requests are six events, 256 in flight: under -race, beside the
	// other tests, the first ones take over 100 ms.
	args := []string{"--quick", "--agent", "self", "--duration", "500ms", "--warmup", "200ms",
		"--idle-conns", "4", "--inflight", "40", "--only", payloadRequest, "--json"}
	var out, errOut bytes.Buffer
	require.NoError(t, run(ctx, args, &out, &errOut), errOut.String())
	var rep Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())

	require.Len(t, rep.Scenarios, 3)
	plain := "uds-plain 4x64 " + payloadRequest
	for i, tr := range reliaTransports {
		s := rep.Scenarios[i]
		assert.Equal(t, tr+" 4x64 "+payloadRequest, s.Name)
		assert.Zero(t, s.Errors, s.FirstError)
		assert.Positive(t, s.Throughput.Median, s.Name)
		assert.Positive(t, s.Allocs.Median, s.Name)
		assert.Equal(t, requestFrames(), s.RequestBytes, s.Name)
		if tr == tUDSPlain {
			assert.Empty(t, s.Baseline)
			assert.Zero(t, s.SockLimitRatio)
			continue
		}
		assert.Equal(t, plain, s.Baseline)
		assert.InEpsilon(t, s.Throughput.Median/rep.Scenarios[0].Throughput.Median, s.ThroughputRatio, 1e-9)
	}
	n := 0
	for _, tg := range rep.Targets {
		if tg.Issue == 23 {
			n++
			assert.False(t, tg.Missing, tg.Target)
		}
	}
	assert.Equal(t, 2, n)
}

// TestRequestEvents: a worker's six events share a correlation id, a new
// one per request.
func TestRequestEvents(t *testing.T) {
	t.Parallel()
	w := newRequestEvents(7)
	require.Len(t, w.events, reqChunks+2)
	corr := func() []string {
		var ids []string
		for _, ev := range w.events {
			switch m := ev.GetMessage().(type) {
			case *agentv2.ProxyToAgent_RequestHeaders:
				ids = append(ids, m.RequestHeaders.GetMetadata().GetCorrelationId())
			case *agentv2.ProxyToAgent_RequestBodyChunk:
				ids = append(ids, m.RequestBodyChunk.GetCorrelationId())
			case *agentv2.ProxyToAgent_RequestComplete:
				ids = append(ids, m.RequestComplete.GetCorrelationId())
			}
		}
		return ids
	}
	first := corr()
	require.Len(t, first, reqChunks+2)
	for _, id := range first {
		assert.Equal(t, "r000007-1", id)
	}
	w.next()
	for _, id := range corr() {
		assert.Equal(t, "r000007-2", id)
	}
	assert.True(t, w.events[reqChunks].GetRequestBodyChunk().GetIsLast())
	assert.Greater(t, requestFrames(), reqChunks*reqChunkSize)
}

// TestScenariosOnlyKeepsPlainPool: a filter on one interceptor's row
// keeps the plain pool it is divided by.
func TestScenariosOnlyKeepsPlainPool(t *testing.T) {
	t.Parallel()
	var names []string
	for _, s := range scenarios(options{only: []string{"uds-failover 4x64"}}) {
		names = append(names, s.name())
	}
	assert.ElementsMatch(t, []string{"uds-plain 4x64 " + payloadRequest, "uds-failover 4x64 " + payloadRequest}, names)
}
