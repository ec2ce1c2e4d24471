package caddyagentwire_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/agenttest"
)

// TestNodeAgentGRPC puts the Node example agent (examples/node-agent), on
// gRPC, in front of reverse_proxy, next to the Go agent on a Unix socket
// in another site.
func TestNodeAgentGRPC(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "node_modules/@connectrpc/connect-node"))
	require.NoError(t, err, "node_modules missing (run scripts/setup)")
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	proc, err := agenttest.StartProcess(ctx, []string{"node", filepath.Join(root, "examples/node-agent/agent.mjs"),
		"--uds", filepath.Join(t.TempDir(), "node.sock"), "--grpc", grpcAddr, "--quiet"})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, proc.Stop(ctx), proc.Stderr())
	})
	w := startWAF(t)
	up := newUpstream(t)
	nodePort, goPort := freePort(t), freePort(t)
	nodeDirective := "agentwire {\n\t\tagent node grpc://" + grpcAddr + " {\n\t\t\tevents response_headers\n\t\t}\n\t}"
	mustLoad(t, site(nodePort, nodeDirective, "reverse_proxy "+up)+site(goPort, "agentwire waf "+w.endpoint(), "reverse_proxy "+up))
	c := newClient(t)
	node := fmt.Sprintf("http://127.0.0.1:%d", nodePort)

	ok := get(t, c, node+"/hello")
	assert.Equal(t, http.StatusOK, ok.status)
	assert.Equal(t, "node", ok.header.Get("X-Agent"))
	admin := get(t, c, node+"/admin")
	assert.Equal(t, http.StatusForbidden, admin.status)
	assert.Equal(t, "forbidden by policy\n", admin.body)

	assert.Equal(t, http.StatusForbidden, get(t, c, fmt.Sprintf("http://127.0.0.1:%d/admin", goPort)).status)
}
