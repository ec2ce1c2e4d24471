package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeReport summarizes one second of events per scenario at the given
// p50, as bench does with measured loops.
func fakeReport(t *testing.T, runs map[string][2]float64) *Report {
	t.Helper()
	r := &Report{}
	for _, sc := range scenarios(options{}) {
		run, ok := runs[sc.name()]
		if !ok {
			continue
		}
		res := loopResult{events: uint64(run[0]), elapsed: time.Second}
		res.hist.record(time.Duration(run[1]) * time.Microsecond)
		r.Scenarios = append(r.Scenarios, summarize(sc, 506, []loopResult{res}))
	}
	require.Len(t, r.Scenarios, len(runs))
	r.computeRatios()
	r.checkTargets()
	return r
}

func targetNamed(t *testing.T, r *Report, name string) TargetResult {
	t.Helper()
	for _, tr := range r.Targets {
		if tr.Target == name {
			return tr
		}
	}
	t.Fatalf("no target %q in %+v", name, r.Targets)
	return TargetResult{}
}

// tableRow is the line of the scenario table that starts with name.
func tableRow(t *testing.T, table, name string) string {
	t.Helper()
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), name+" ") {
			return line
		}
	}
	t.Fatalf("no row %q in\n%s", name, table)
	return ""
}

// fields is s with every run of spaces made one.
func fields(s string) string { return strings.Join(strings.Fields(s), " ") }

func TestRatiosToBothRawBaselines(t *testing.T) {
	t.Parallel()
	r := fakeReport(t, map[string][2]float64{
		"sock-limit 4x64 headers": {1600000, 100},
		"raw 4x64 headers":        {800000, 200},
		"uds 4x64 headers":        {400000, 500},
		"uds-conn 4x64 headers":   {500000, 400},
		"sock-limit 1x1 headers":  {30000, 30},
		"raw 1x1 headers":         {20000, 40},
		"uds 1x1 headers":         {16000, 60},
	})
	uds, raw := r.scenario("uds 4x64 headers"), r.scenario("raw 4x64 headers")
	assert.Equal(t, "sock-limit 4x64 headers", uds.SockLimitBaseline)
	assert.InDelta(t, 0.5, uds.ThroughputRatio, 1e-6)
	assert.InDelta(t, 0.25, uds.SockLimitRatio, 1e-6)
	assert.InDelta(t, 0.5, raw.SockLimitRatio, 1e-6, "raw frames against the socket limit")
	assert.Zero(t, raw.ThroughputRatio)
	assert.InDelta(t, 0.3125, r.scenario("uds-conn 4x64 headers").SockLimitRatio, 1e-6)
	assert.Zero(t, r.scenario("sock-limit 4x64 headers").SockLimitRatio)

	for _, c := range []struct {
		name  string
		value float64
		met   bool
	}{
		{"uds 4x64 pool throughput ratio to transport.Conn (uds-conn)", 0.8, false},
		{"uds 4x64 throughput ratio to raw frames", 0.5, true},
		{"uds 4x64 throughput ratio to the socket limit", 0.25, true},
		{"uds 1 in flight p50 ratio to raw frames", 1.5, false},
	} {
		got := targetNamed(t, r, c.name)
		assert.InDelta(t, c.value, got.Value, 0.02, c.name) // p50s are histogram buckets
		assert.Equal(t, c.met, got.Met, c.name)
		assert.False(t, got.Missing, c.name)
		assert.Equal(t, 18, got.Issue)
	}
	assert.True(t, targetNamed(t, r, "grpc 1x64 throughput ratio to bare grpc-go (protobuf messages)").Missing)

	var out bytes.Buffer
	writeTables(&out, r)
	table := out.String()
	assert.Contains(t, fields(tableRow(t, table, "uds 4x64 headers")), " 400k [400k–400k] 0.50× 0.25× ")
	assert.Contains(t, fields(tableRow(t, table, "raw 4x64 headers")), " 800k [800k–800k] 0.50× ")
	assert.Contains(t, fields(tableRow(t, table, "sock-limit 4x64 headers")), " 1.60M [1.60M–1.60M] 99.3 ")
	assert.Contains(t, fields(tableRow(t, table, "#18  uds 4x64 throughput ratio to the socket limit")), "limit 0.25 want >= 0.25 MET")
	assert.Contains(t, fields(tableRow(t, table, "#18  uds 4x64 pool")), "(uds-conn) 0.80 want >= 0.90 MISSED")
	assert.Contains(t, table, "not measured")
}

// Without the bare-Conn scenario the pool's ratio to it is not measured,
// not zero and missed.
func TestTargetsMissingScenario(t *testing.T) {
	t.Parallel()
	r := fakeReport(t, map[string][2]float64{
		"sock-limit 4x64 headers": {1000, 100},
		"raw 4x64 headers":        {1000, 100},
		"uds 4x64 headers":        {1000, 100},
	})
	got := targetNamed(t, r, "uds 4x64 pool throughput ratio to transport.Conn (uds-conn)")
	assert.True(t, got.Missing)
	assert.False(t, got.Met)
	assert.True(t, targetNamed(t, r, "uds 4x64 throughput ratio to the socket limit").Met)
}

// A ratio target gives the spread of its repetitions taken in pairs: the
// i-th of one scenario over the i-th of the other, which ran beside it.
func TestTargetSpreadPairsRepetitions(t *testing.T) {
	t.Parallel()
	reps := func(sc scenario, evs ...float64) ScenarioResult {
		var rs []loopResult
		for _, ev := range evs {
			res := loopResult{events: uint64(ev), elapsed: time.Second}
			res.hist.record(100 * time.Microsecond)
			rs = append(rs, res)
		}
		return summarize(sc, 506, rs)
	}
	byName := map[string]scenario{}
	for _, sc := range scenarios(options{}) {
		byName[sc.name()] = sc
	}
	r := &Report{Scenarios: []ScenarioResult{
		// The machine slows in the second repetition and speeds up in the
		// third: the pairs give 0.9, 0.8 and 0.8, the medians 450 over 500.
		reps(byName["uds 4x64 headers"], 450, 240, 560),
		reps(byName["uds-conn 4x64 headers"], 500, 300, 700),
	}}
	r.computeRatios()
	r.checkTargets()
	got := targetNamed(t, r, "uds 4x64 pool throughput ratio to transport.Conn (uds-conn)")
	assert.InDelta(t, 0.9, got.Value, 1e-9)
	assert.True(t, got.Met)
	assert.InDelta(t, 0.8, got.Min, 1e-9)
	assert.InDelta(t, 0.9, got.Max, 1e-9)

	var out bytes.Buffer
	writeTargets(&out, r.Targets)
	assert.Contains(t, fields(out.String()), "(uds-conn) 0.90 [0.80–0.90] want >= 0.90 MET")

	lo, hi := pairedSpread([]float64{1}, []float64{2})
	assert.Zero(t, lo+hi, "one repetition has no spread")
}
