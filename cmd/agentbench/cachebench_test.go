package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// quickRedis runs the quick Redis row and returns its result and tables.
func quickRedis(t *testing.T) (ScenarioResult, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := []string{"--quick", "--agent", "self", "--duration", "100ms", "--warmup", "20ms",
		"--idle-conns", "4", "--inflight", "40", "--only", "redis-hit"}
	var out, errOut bytes.Buffer
	require.NoError(t, run(ctx, append(args, "--json"), &out, &errOut), errOut.String())
	var rep Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
	require.Len(t, rep.Scenarios, 1)
	var tables bytes.Buffer
	writeTables(&tables, &rep)
	return rep.Scenarios[0], tables.String()
}

// TestRedisHitRow: RedisStore hits are a row of their own, measured
// against the redis-server the run starts.
func TestRedisHitRow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is installed by ./scripts/setup; TestRedisHitRowSkipped covers its absence")
	}
	s, tables := quickRedis(t)
	assert.Equal(t, "redis-hit 1x1 decision", s.Name)
	assert.Empty(t, s.Skipped)
	assert.Zero(t, s.Errors, s.FirstError)
	assert.Positive(t, s.Throughput.Median)
	assert.Positive(t, s.P50.Median)
	assert.Positive(t, s.ServerCPU.Median, "redis-server's CPU")
	assert.Contains(t, tables, "redis-hit 1x1 decision")
}

// TestRedisHitRowSkipped: without redis-server the row says so and the
// run goes on.
func TestRedisHitRowSkipped(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Setenv("PATH", t.TempDir())
	s, tables := quickRedis(t)
	assert.Equal(t, redisMissing, s.Skipped)
	assert.Contains(t, tables, "redis-hit 1x1 decision: "+redisMissing)
}
