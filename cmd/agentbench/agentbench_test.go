package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestQuick runs the --quick logic end to end, shortened further: real
// child processes (this test binary re-executed as the agent and the
// baseline server), every transport, the memory measurements and both
// outputs. It keeps the tool working; the numbers are not checked.
func TestQuick(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"--quick", "--agent", "self", "--duration", "100ms", "--warmup", "20ms",
		"--idle-conns", "4", "--inflight", "40",
		"--only", "raw 1x1 headers,uds 1x1 headers,1x64 headers,uds-conn 4x64 headers"}

	var out, errOut bytes.Buffer
	require.NoError(t, run(ctx, append(args, "--json"), &out, &errOut), errOut.String())
	var rep Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())

	got := map[string]ScenarioResult{}
	for _, s := range rep.Scenarios {
		got[s.Name] = s
		assert.Positive(t, s.Throughput.Median, s.Name)
		assert.Positive(t, s.P50.Median, s.Name)
		assert.GreaterOrEqual(t, s.P99.Median, s.P50.Median, s.Name)
		assert.Positive(t, s.ClientCPU.Median, s.Name)
		assert.Positive(t, s.ServerCPU.Median, s.Name)
		if s.Baseline != "" {
			assert.Positive(t, s.ThroughputRatio, s.Name)
		}
	}
	for _, name := range []string{"raw 1x1 headers", "uds 1x1 headers", "uds 1x64 headers", "reverse 1x64 headers",
		"grpc 1x64 headers", "bare-grpc 1x64 headers", "bare-grpc-msg 1x64 headers", "bare-grpc-pb 1x64 headers",
		"connect 1x64 headers", "bare-connect 1x64 headers",
		"uds-conn 4x64 headers", "raw 4x64 headers",
		"sock-limit 1x1 headers", "sock-limit 1x64 headers", "sock-limit 4x64 headers"} {
		assert.Contains(t, got, name)
	}
	// Every Unix-socket scenario has its ratio to the socket limit of its
	// shape, computed from the two throughputs reported.
	for _, name := range []string{"raw 1x1 headers", "uds 1x1 headers", "uds 1x64 headers", "reverse 1x64 headers",
		"raw 4x64 headers", "uds-conn 4x64 headers"} {
		s := got[name]
		b := got[s.SockLimitBaseline]
		require.Equal(t, tSockLimit, strings.Fields(s.SockLimitBaseline)[0], name)
		assert.Equal(t, s.Conns, b.Conns, name)
		assert.Equal(t, s.InFlight, b.InFlight, name)
		assert.InEpsilon(t, s.Throughput.Median/b.Throughput.Median, s.SockLimitRatio, 1e-9, name)
	}
	assert.Zero(t, got["grpc 1x64 headers"].SockLimitRatio)
	assert.NotContains(t, got, "uds 1x64 body16k")
	assert.Positive(t, got["grpc 1x64 headers"].ProtobufRatio)
	assert.Positive(t, got["grpc 1x64 headers"].BytesRatio)
	assert.Equal(t, "bare-grpc-msg 1x64 headers", got["grpc 1x64 headers"].Baseline)
	assert.Len(t, rep.Memory, 10)
	for _, m := range rep.Memory {
		// With --quick's few connections, and other tests allocating in
		// parallel under -race, the heap delta is noise: check that every
		// measurement was made, not its size (full runs report sizes).
		assert.Positive(t, m.N, "%s %s", m.What, m.Transport)
		assert.False(t, math.IsNaN(m.HeapBytes) || math.IsNaN(m.StackBytes), "%s %s", m.What, m.Transport)
	}
	assert.NotEmpty(t, rep.Targets)

	// The same report as tables.
	var tables bytes.Buffer
	writeTables(&tables, &rep)
	for _, want := range []string{"uds 1x1 headers", "×", "×sock", "sock-limit 4x64 headers", "idle connection",
		"targets (issue 18", "uds 4x64 throughput ratio to the socket limit"} {
		assert.Contains(t, tables.String(), want)
	}
}

func TestParseOptions(t *testing.T) {
	t.Parallel()
	o, err := parseOptions([]string{"--quick"}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, 1, o.reps)
	assert.Equal(t, 150*time.Millisecond, o.duration)
	o, err = parseOptions([]string{"--reps", "5", "--only", "uds, grpc"}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, 5, o.reps)
	assert.Equal(t, 1500*time.Millisecond, o.duration)
	assert.Equal(t, []string{"uds", "grpc"}, o.only)
	_, err = parseOptions([]string{"stray"}, &bytes.Buffer{})
	assert.Error(t, err)
	o, err = parseOptions([]string{"--gogc", "400"}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, 400, o.gogc)
	_, err = parseOptions([]string{"--gogc", "-1"}, &bytes.Buffer{})
	assert.Error(t, err)
}

func TestScenariosOnlyKeepsBaselines(t *testing.T) {
	t.Parallel()
	var names []string
	for _, s := range scenarios(options{only: []string{"grpc 1x64 headers"}}) {
		names = append(names, s.name())
	}
	assert.ElementsMatch(t, []string{"bare-grpc 1x64 headers", "bare-grpc-msg 1x64 headers", "bare-grpc-pb 1x64 headers", "grpc 1x64 headers"}, names)
	for _, o := range []options{{}, {quick: true}} {
		all := scenarios(o)
		for _, s := range all {
			if b, ok := s.baseline(); ok {
				assert.Contains(t, all, b, s.name())
			}
			if b, ok := s.sockLimitBaseline(); ok {
				assert.Contains(t, all, b, s.name())
			}
		}
	}
	names = nil
	for _, s := range scenarios(options{only: []string{"uds 4x64 headers"}}) {
		names = append(names, s.name())
	}
	assert.ElementsMatch(t, []string{"sock-limit 4x64 headers", "raw 4x64 headers", "uds 4x64 headers"}, names)
}

func TestHistogram(t *testing.T) {
	t.Parallel()
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}, {0.999, 999 * time.Microsecond}} {
		got := h.quantile(c.q)
		assert.InEpsilon(t, float64(c.want), float64(got), 0.035, "q=%v got %v", c.q, got)
	}
	// Buckets are contiguous and ordered.
	for v := uint64(0); v < 1<<20; v += 7 {
		i := histBucket(v)
		assert.LessOrEqual(t, histBucket(v), histBucket(v+1))
		if i >= 1<<histSubBits {
			lo := histValue(i) - (1<<(i>>histSubBits-1))/2
			assert.LessOrEqual(t, lo, v)
		}
	}
	var empty histogram
	assert.Zero(t, empty.quantile(0.5))
}

func TestStatOf(t *testing.T) {
	t.Parallel()
	assert.Equal(t, Stat{Median: 2, Min: 1, Max: 9}, statOf([]float64{9, 1, 2}))
	assert.Equal(t, Stat{Median: 2.5, Min: 1, Max: 9}, statOf([]float64{9, 1, 2, 3}))
	assert.Equal(t, Stat{}, statOf(nil))
}

func TestHeadersEventSize(t *testing.T) {
	t.Parallel()
	ev := headersEvent(3)
	assert.Len(t, ev.GetRequestHeaders().GetHeaders(), 20)
	var text int
	for _, h := range ev.GetRequestHeaders().GetHeaders() {
		text += len(h.GetName()) + len(h.GetValue())
	}
	assert.InDelta(t, 300, text, 30)
	size := frameSize(ev)
	assert.Greater(t, size, 400)
	assert.Less(t, size, 600)
	assert.True(t, strings.HasPrefix(ev.GetRequestHeaders().GetMetadata().GetCorrelationId(), "c"))
}
