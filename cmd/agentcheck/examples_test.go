package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentwire/agentwire/agenttest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exampleAgent is an agent in another language, run as a subprocess.
type exampleAgent struct {
	name string
	dir  string // under the repository root; the test skips while it is absent
	// command returns the program and arguments for a Unix socket and a
	// gRPC address.
	command func(root, socket, grpcAddr string) []string
	// needs lists files (under the root) without which the agent cannot
	// run: a missing one is a setup error, not a skip.
	needs []string
	// mutation is the header the agent sets on allowed requests.
	mutation string
}

var exampleAgents = []exampleAgent{
	{
		name: "node",
		dir:  "examples/node-agent",
		command: func(root, socket, grpcAddr string) []string {
			return []string{"node", filepath.Join(root, "examples/node-agent/agent.mjs"), "--uds", socket, "--grpc", grpcAddr, "--quiet"}
		},
		needs:    []string{"examples/node-agent/agent.mjs", "node_modules/@connectrpc/connect-node"},
		mutation: "x-agent",
	},
	{
		name: "python",
		dir:  "examples/python-agent",
		command: func(root, socket, grpcAddr string) []string {
			return []string{"/usr/bin/python3", filepath.Join(root, "examples/python-agent/agent.py"), "--uds", socket, "--grpc", grpcAddr}
		},
		needs:    []string{"examples/python-agent/agent.py"},
		mutation: "x-agent",
	},
}

// repoRoot is the module root, two levels above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "go.mod"))
	require.NoError(t, err, "module root not found")
	return root
}

// TestExampleAgentsPassConformance runs agentcheck against the Node and
// Python example agents on both transports. It skips an agent only while
// its directory does not exist; once it does, the agent must pass.
func TestExampleAgentsPassConformance(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	for _, ea := range exampleAgents {
		t.Run(ea.name, func(t *testing.T) {
			t.Parallel()
			if _, err := os.Stat(filepath.Join(root, ea.dir)); errors.Is(err, os.ErrNotExist) {
				t.Skipf("%s does not exist (yet): nothing to check", ea.dir)
			}
			for _, f := range ea.needs {
				_, err := os.Stat(filepath.Join(root, f))
				require.NoError(t, err, "%s exists but %s is missing (run scripts/setup)", ea.dir, f)
			}
			socket := socketPath(t)
			grpcAddr := freeLoopbackAddr(t)
			startExample(t, ea.command(root, socket, grpcAddr))
			for _, ep := range []string{"unix://" + socket, "grpc://" + grpcAddr} {
				code, out, errOut := runBinary(t, "-timeout", "60s", "-mutation-header", ea.mutation, "-block-status", "403", ep)
				t.Logf("%s agent, %s:\n%s%s", ea.name, ep, out, errOut)
				require.Equal(t, 0, code, "the %s example agent fails conformance on %s:\n%s%s", ea.name, ep, out, errOut)
				// Nothing skipped but the frame checks on gRPC, no warnings.
				skipped := map[bool]string{true: "0", false: "3"}[strings.HasPrefix(ep, "unix:")]
				assert.Regexp(t, `(?m)^PASS: \d+ passed, 0 failed, `+skipped+` skipped, 0 optional failed$`, out)
			}
		})
	}
}

// freeLoopbackAddr returns a loopback address with a port that was free a
// moment ago.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// readyTimeout bounds an example agent's start-up.
const readyTimeout = 30 * time.Second

// startExample starts argv, waits for its "ready" line, and stops it when
// the test ends.
func startExample(t *testing.T, argv []string) {
	t.Helper()
	_, err := exec.LookPath(argv[0])
	require.NoError(t, err, "%s is needed to run this example agent", argv[0])
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	p, err := agenttest.StartProcess(ctx, argv)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, p.Stop(ctx), "stopping %v; stderr:\n%s", argv, p.Stderr())
	})
}
