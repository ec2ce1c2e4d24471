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
	name, id string
	dir      string // under the repository root; the test skips while it is absent
	needs    []string
	command  func(root, socket, grpcAddr string) []string
}

var exampleAgents = []exampleAgent{
	{
		name: "node", id: "node-agent", dir: "examples/node-agent",
		needs: []string{"examples/node-agent/agent.mjs", "node_modules/@connectrpc/connect-node"},
		command: func(root, socket, grpcAddr string) []string {
			return []string{"node", filepath.Join(root, "examples/node-agent/agent.mjs"), "--uds", socket, "--grpc", grpcAddr, "--quiet"}
		},
	},
	{
		name: "python", id: "python-agent", dir: "examples/python-agent",
		needs: []string{"examples/python-agent/agent.py"},
		command: func(root, socket, grpcAddr string) []string {
			return []string{"/usr/bin/python3", filepath.Join(root, "examples/python-agent/agent.py"), "--uds", socket, "--grpc", grpcAddr}
		},
	},
}

// TestExampleAgents runs probe, send and watch against the Node and Python
// example agents on both transports. It skips an agent only while its
// directory does not exist.
func TestExampleAgents(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
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
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			grpcAddr := ln.Addr().String()
			require.NoError(t, ln.Close())
			argv := ea.command(root, socket, grpcAddr)
			_, err = exec.LookPath(argv[0])
			require.NoError(t, err, "%s is needed to run this example agent", argv[0])
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			p, err := agenttest.StartProcess(ctx, argv)
			require.NoError(t, err)
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				assert.NoError(t, p.Stop(ctx), "stderr:\n%s", p.Stderr())
			})

			for _, ep := range []string{"unix://" + socket, "grpc://" + grpcAddr} {
				code, out, errOut := runBinary(t, "probe", ep)
				require.Equal(t, 0, code, "probe %s: %s%s", ep, out, errOut)
				assert.Regexp(t, `(?m)^agent\s+`+ea.id+`\b`, out, ep)
				assert.Regexp(t, `(?m)^protocol\s+2$`, out, ep)
				assert.Regexp(t, `(?m)^health\s+HEALTHY`, out, ep)
				assert.Regexp(t, `(?m)^ping\s+rtt \S+$`, out, ep)

				code, out, errOut = runBinary(t, "send", ep, "-uri", "/admin/panel", "-H", "user-agent: agentctl-test")
				require.Equal(t, 0, code, "send %s: %s%s", ep, out, errOut)
				assert.Regexp(t, `(?m)^  decision\s+BLOCK 403$`, out, ep)
				assert.Regexp(t, `(?m)^  audit\s+tags admin-blocked`, out, ep)

				code, out, errOut = runBinary(t, "send", ep, "-method", "POST", "-uri", "/api", "-body", `{"a":1}`)
				require.Equal(t, 0, code, "send %s: %s%s", ep, out, errOut)
				assert.Equal(t, 2, strings.Count(out, "ALLOW"), "%s: headers and body allowed:\n%s", ep, out)
				assert.Regexp(t, `(?m)^  (request|response) header\s+(set|add) x-agent: `, out, ep)

				code, out, errOut = runBinary(t, "watch", ep, "-for", "1s", "-interval", "200ms")
				require.Equal(t, 0, code, "watch %s: %s%s", ep, out, errOut)
				assert.GreaterOrEqual(t, strings.Count(out, "  health   "+ea.id+" HEALTHY"), 3, "%s:\n%s", ep, out)
			}
		})
	}
}
