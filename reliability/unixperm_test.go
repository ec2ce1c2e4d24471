package reliability_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// childDialEnv tells a re-executed test binary to dial the agent socket it
// names, handshake, print "served" or "refused: why", and exit.
const childDialEnv = "AGENTWIRE_RELIABILITY_DIAL"

// nobody is the uid and gid the child runs as.
const nobody = 65534

// childDial is the child's whole life: one framed handshake attempt.
func childDial(path string) int {
	fmt.Println(dialOnce(path))
	return 0
}

func dialOnce(path string) string {
	nc, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return "refused: dial: " + err.Error()
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(3 * time.Second))
	hs := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Handshake{Handshake: &agentv2.HandshakeRequest{
		SupportedVersions: []uint32{transport.ProtocolVersion}, ProxyId: "uid-test", SupportedEncodings: []string{"protobuf"},
	}}}
	if err := codec.WriteFrameTo(nc, hs, 0); err != nil {
		return "refused: write: " + err.Error()
	}
	var m agentv2.AgentToProxy
	if err := codec.NewReader(nc, 0).ReadAgentToProxy(&m); err != nil {
		return "refused: read: " + err.Error()
	}
	if m.GetHandshake().GetSuccess() {
		return "served"
	}
	return "refused: answer: " + m.String()
}

// serveUIDAgent serves an in-process agent on a socket anyone may open
// (0666, in a directory anyone may enter), admitting only uids.
func serveUIDAgent(t *testing.T, uids ...uint32) string {
	t.Helper()
	dir := shortDir(t)
	require.NoError(t, os.Chmod(dir, 0o755))
	path := filepath.Join(dir, "agent.sock")
	srv, err := agent.NewServer(agent.Base{}, agent.WithAllowedUIDs(uids...), agent.WithLogger(quietLogger))
	require.NoError(t, err)
	ln, err := srv.ListenUnix(path, agent.WithSocketMode(0o666))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeUnix(ctx, ln)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	return path
}

// runAsNobody re-executes this test binary as uid/gid 65534 to dial path.
// The binary is copied where that user can execute it.
func runAsNobody(t *testing.T, path string) (string, error) {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	dir := shortDir(t)
	require.NoError(t, os.Chmod(dir, 0o755))
	bin := filepath.Join(dir, "child.test")
	copyFile(t, self, bin, 0o755)
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), childDialEnv+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return strings.TrimSpace(out.String()), err
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	require.NoError(t, err)
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	require.NoError(t, err)
	_, err = io.Copy(dst, src)
	require.NoError(t, err)
	require.NoError(t, dst.Close())
}

// TestUnixSocketMode: sockets are created 0600 unless configured, on the
// agent's listener and on the proxy's reverse listener.
func TestUnixSocketMode(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	srv, err := agent.NewServer(agent.Base{}, agent.WithLogger(quietLogger))
	require.NoError(t, err)
	defer srv.Close()
	mode := func(path string) os.FileMode {
		fi, err := os.Stat(path)
		require.NoError(t, err)
		require.NotZero(t, fi.Mode()&os.ModeSocket, "%s is not a socket", path)
		return fi.Mode().Perm()
	}

	def := filepath.Join(dir, "default.sock")
	ln, err := srv.ListenUnix(def)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), mode(def), "agent socket, default mode")
	require.NoError(t, ln.Close())

	custom := filepath.Join(dir, "custom.sock")
	ln, err = srv.ListenUnix(custom, agent.WithSocketMode(0o660))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o660), mode(custom), "agent socket, WithSocketMode(0660)")
	require.NoError(t, ln.Close())

	rev := filepath.Join(dir, "reverse.sock")
	rln, err := transport.ListenReverseUnix(rev)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), mode(rev), "proxy's reverse-connection socket")
	require.NoError(t, rln.Close())
}

// TestPeerUIDAllowlist: with WithAllowedUIDs, a peer running as another
// user is refused before the handshake. The other user is a child process
// running as nobody (65534); where the machine cannot start one, the same
// check is made from this process by leaving its own uid out.
func TestPeerUIDAllowlist(t *testing.T) {
	t.Parallel()
	me := uint32(os.Getuid())

	t.Run("OwnUIDAllowed", func(t *testing.T) {
		t.Parallel()
		assert.Equal(t, "served", dialOnce(serveUIDAgent(t, me)))
	})
	t.Run("OwnUIDNotAllowed", func(t *testing.T) {
		t.Parallel()
		got := dialOnce(serveUIDAgent(t, me+1))
		assert.True(t, strings.HasPrefix(got, "refused"), "got %q", got)
		hostileRejected.Add(1)
	})
	t.Run("OtherUser", func(t *testing.T) {
		t.Parallel()
		if os.Getuid() != 0 {
			t.Skip("starting a process as another user needs root; OwnUIDNotAllowed covers the check")
		}
		// Control: the child gets through when its uid is allowed, so a
		// refusal below is the allowlist's doing, not the file system's.
		got, err := runAsNobody(t, serveUIDAgent(t, me, nobody))
		require.NoError(t, err, got)
		require.Equal(t, "served", got, "child as uid %d with its uid allowed", nobody)

		got, err = runAsNobody(t, serveUIDAgent(t, me))
		require.NoError(t, err, got)
		assert.True(t, strings.HasPrefix(got, "refused"), "child as uid %d, only %d allowed: %q", nobody, me, got)
		hostileRejected.Add(1)
		figure(t, "uid.refused", "connection from uid %d refused by a uid-%d allowlist (%s)", nobody, me, got)
	})
}
