package httpguard_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/agenttest"
	"github.com/agentwire/agentwire/httpguard"
)

// TestNodeAgent puts the Node example agent (examples/node-agent), over
// its Unix socket and its gRPC server, in front of a reverse proxy.
func TestNodeAgent(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(root, "node_modules/@connectrpc/connect-node"))
	require.NoError(t, err, "node_modules missing (run scripts/setup)")
	socket := sockPath(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	grpcAddr := ln.Addr().String()
	require.NoError(t, ln.Close())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	proc, err := agenttest.StartProcess(ctx, []string{"node", filepath.Join(root, "examples/node-agent/agent.mjs"),
		"--uds", socket, "--grpc", grpcAddr, "--quiet"})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, proc.Stop(ctx), proc.Stderr())
	})
	p := newPool(t, map[string]string{"node-uds": "unix://" + socket, "node-grpc": "grpc://" + grpcAddr})
	up := newUpstream(t)
	for _, id := range []string{"node-uds", "node-grpc"} {
		t.Run(id, func(t *testing.T) {
			var logs logBuffer
			g := newGuard(t, p, httpguard.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
				httpguard.WithRoute("/", httpguard.WithAgent(id,
					httpguard.WithEvents(httpguard.RequestBody|httpguard.ResponseHeaders|httpguard.RequestComplete))))
			base := serveProxy(t, g, up.URL)
			c := newClient(t)
			ok := do(t, c, "GET", base+"/hello", nil)
			assert.Equal(t, http.StatusOK, ok.status)
			assert.Equal(t, "node", ok.header.Get("X-Agent"))
			admin := do(t, c, "GET", base+"/admin", nil)
			assert.Equal(t, http.StatusForbidden, admin.status)
			assert.Equal(t, "forbidden by policy\n", admin.body)
			assert.Contains(t, logs.String(), "admin-blocked")
			assert.Contains(t, logs.String(), "ADMIN_PATH")
		})
	}
}
