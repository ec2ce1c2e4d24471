package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/agenttest"
	"github.com/agentwire/agentwire/examples/waf-agent/waf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
)

// binary is the agentcheck command built for the tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agentcheck")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "agentcheck")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building agentcheck: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// runBinary runs agentcheck with args and returns its exit status, stdout
// and stderr.
func runBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("running agentcheck: %v", err)
	return 0, "", ""
}

func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "aw")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "a.sock")
}

// startGoAgent serves h with the Go SDK on a Unix socket and on grpc-go and
// returns both endpoints.
func startGoAgent(t *testing.T, h agent.Handler) (unixEP, grpcEP string) {
	t.Helper()
	srv, err := agent.NewServer(h, agent.WithAgentID("go-agent"), agent.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	require.NoError(t, err)
	path := socketPath(t)
	uln, err := srv.ListenUnix(path)
	require.NoError(t, err)
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer(agent.GRPCServerOptions()...)
	srv.RegisterGRPC(gs)
	ctx, cancel := context.WithCancel(context.Background())
	udone, gdone := make(chan error, 1), make(chan error, 1)
	go func() { udone <- srv.ServeUnix(ctx, uln) }()
	go func() { gdone <- gs.Serve(tln) }()
	t.Cleanup(func() {
		cancel()
		srv.Close()
		gs.Stop()
		assert.NoError(t, <-udone)
		assert.NoError(t, <-gdone)
	})
	return "unix://" + path, "grpc://" + tln.Addr().String()
}

func TestPassesAgainstGoAgent(t *testing.T) {
	t.Parallel()
	unixEP, grpcEP := startGoAgent(t, &waf.Handler{})
	for _, ep := range []string{unixEP, grpcEP} {
		t.Run(strings.SplitN(ep, ":", 2)[0], func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runBinary(t, "-mutation-header", "x-waf", "-block-status", "403", ep)
			t.Logf("\n%s%s", out, errOut)
			require.Equal(t, 0, code)
			assert.Contains(t, out, "agentcheck "+ep)
			for _, name := range agenttest.CheckNames() {
				assert.Contains(t, out, name)
			}
			assert.Regexp(t, `(?m)^decision/block\s+PASS\s+\S+\s+GET /admin: block 403`, out)
			assert.Regexp(t, `(?m)^PASS: \d+ passed, 0 failed`, out)
			assert.Empty(t, errOut)
		})
	}
}

func TestJSONOutput(t *testing.T) {
	t.Parallel()
	unixEP, _ := startGoAgent(t, &waf.Handler{})
	// Flags after the endpoint work too.
	code, out, _ := runBinary(t, unixEP, "-json", "-checks", "handshake,ping,decision/block")
	require.Equal(t, 0, code, out)
	var got struct {
		Endpoint string             `json:"endpoint"`
		Passed   bool               `json:"passed"`
		Summary  agenttest.Summary  `json:"summary"`
		Results  []agenttest.Result `json:"results"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	assert.Equal(t, unixEP, got.Endpoint)
	assert.True(t, got.Passed)
	assert.Equal(t, agenttest.Summary{Passed: 3}, got.Summary)
	require.Len(t, got.Results, 3)
	assert.Equal(t, "handshake", got.Results[0].Name)
	assert.Contains(t, got.Results[0].Detail, `agent "go-agent"`)
}

// permissive allows everything: the block check must fail.
type permissive struct{ agent.Base }

func TestFailingAgentExitsOne(t *testing.T) {
	t.Parallel()
	unixEP, _ := startGoAgent(t, permissive{})
	code, out, _ := runBinary(t, "-checks", "decision/block,decision/allow", unixEP)
	assert.Equal(t, 1, code, out)
	assert.Regexp(t, `(?m)^decision/block\s+FAIL\s+\S+\s+GET /admin: want a block, got allow`, out)
	assert.Regexp(t, `(?m)^decision/allow\s+PASS`, out)
	assert.Contains(t, out, "FAIL: 1 passed, 1 failed")
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	ep := "unix://" + socketPath(t)
	code, out, errOut := runBinary(t, ep)
	assert.Equal(t, exitNoAgent, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "agentcheck: cannot reach "+ep+": ")
	assert.Contains(t, errOut, "no such file or directory")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	code, _, errOut = runBinary(t, "grpc://"+addr)
	assert.Equal(t, exitNoAgent, code)
	assert.Contains(t, errOut, "agentcheck: cannot reach grpc://"+addr+": ")
	assert.Contains(t, errOut, "connection refused")
}

func TestUsage(t *testing.T) {
	t.Parallel()
	code, _, errOut := runBinary(t)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "usage: agentcheck [flags] ENDPOINT")

	code, _, errOut = runBinary(t, "-checks", "nope", "unix:///x")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, `unknown check "nope"`)

	code, _, errOut = runBinary(t, "ftp://x")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, `unknown scheme "ftp"`)

	code, out, errOut := runBinary(t, "-nope")
	assert.Equal(t, exitUsage, code)
	assert.Empty(t, out)
	assert.Contains(t, errOut, "flag provided but not defined: -nope")
	assert.Contains(t, errOut, "usage: agentcheck [flags] ENDPOINT")

	// Help goes to stdout and documents the exit statuses.
	code, out, errOut = runBinary(t, "-h")
	assert.Equal(t, exitPass, code)
	assert.Empty(t, errOut)
	assert.Contains(t, out, "usage: agentcheck [flags] ENDPOINT")
	for _, status := range []string{"0  every required check passed", "1  the agent failed a required check",
		"2  usage error", "3  no agent", "4  incomplete"} {
		assert.Contains(t, out, status)
	}
	assert.Contains(t, out, "-check-timeout")

	// -list names every check, in order, with what it expects.
	code, out, _ = runBinary(t, "-list")
	assert.Equal(t, exitPass, code)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Len(t, lines, len(agenttest.Checks()), out)
	for i, c := range agenttest.Checks() {
		assert.Regexp(t, `^`+regexp.QuoteMeta(c.Name)+`\s+\S`, lines[i])
		assert.True(t, strings.HasSuffix(lines[i], c.Description), "%q", lines[i])
	}
	assert.Contains(t, out, "flow-control")
	assert.Regexp(t, `(?m)^flow-control\s+\(optional\) `, out)
}
