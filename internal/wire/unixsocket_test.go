package wire

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
)

// shortDir is a temporary directory whose paths fit a socket address
// (t.TempDir's may not).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "aw")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// listen calls ListenUnix and closes the listener when the test ends.
func listen(t *testing.T, path string, mode os.FileMode) *UnixListener {
	t.Helper()
	ln, err := ListenUnix(context.Background(), path, mode)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// requireSocket checks path is a socket with mode perm that answers.
func requireSocket(t *testing.T, path string, perm os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	require.NoError(t, err)
	assert.Equal(t, os.ModeSocket, fi.Mode().Type(), "%s is not a socket", path)
	assert.Equal(t, perm, fi.Mode().Perm())
	c, err := net.Dial("unix", path)
	require.NoError(t, err, "the socket answers")
	_ = c.Close()
}

// staleSocket leaves a socket file at path that nobody listens on.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	require.NoError(t, err)
	old.SetUnlinkOnClose(false)
	require.NoError(t, old.Close())
}

func TestListenUnixModeAndRemoval(t *testing.T) {
	t.Parallel()
	for _, mode := range []os.FileMode{0o600, 0o660, 0o666} {
		dir := shortDir(t)
		path := filepath.Join(dir, "a.sock")
		ln, err := ListenUnix(context.Background(), path, mode)
		require.NoError(t, err)
		requireSocket(t, path, mode)
		assert.Equal(t, path, ln.Addr().String())
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		assert.Len(t, entries, 1, "no private directory left behind")
		require.NoError(t, ln.Close())
		_, err = os.Lstat(path)
		assert.ErrorIs(t, err, os.ErrNotExist, "Close removes the socket file")
	}
}

// TestListenUnixUmask: the socket's mode is the one asked for whatever the
// umask, even one that leaves the owner nothing. Not parallel: the umask is
// the process's.
func TestListenUnixUmask(t *testing.T) {
	for _, umask := range []int{0, 0o022, 0o077, 0o777} {
		old := syscall.Umask(umask)
		path := filepath.Join(shortDir(t), "a.sock")
		ln, err := ListenUnix(context.Background(), path, 0o600)
		syscall.Umask(old)
		require.NoError(t, err, "umask %#o", umask)
		requireSocket(t, path, 0o600)
		require.NoError(t, ln.Close())
	}
}

func TestListenUnixExisting(t *testing.T) {
	t.Parallel()
	t.Run("StaleSocketReplaced", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(shortDir(t), "a.sock")
		staleSocket(t, path)
		listen(t, path, 0o600)
		requireSocket(t, path, 0o600)
	})
	t.Run("LiveSocketKept", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(shortDir(t), "a.sock")
		live, err := net.Listen("unix", path)
		require.NoError(t, err)
		defer live.Close()
		_, err = ListenUnix(context.Background(), path, 0o600)
		assert.Equal(t, agentwire.CodeAlreadyExists, agentwire.CodeOf(err), "%v", err)
		c, err := net.Dial("unix", path)
		require.NoError(t, err, "the live socket still works")
		_ = c.Close()
	})
	t.Run("RegularFileKept", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(shortDir(t), "a.sock")
		require.NoError(t, os.WriteFile(path, []byte("precious"), 0o600))
		_, err := ListenUnix(context.Background(), path, 0o600)
		assert.Equal(t, agentwire.CodeFailedPrecondition, agentwire.CodeOf(err), "%v", err)
		assert.ErrorContains(t, err, "regular file")
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		assert.Equal(t, "precious", string(b))
	})
	t.Run("DirectoryKept", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(shortDir(t), "a.sock")
		require.NoError(t, os.Mkdir(path, 0o700))
		_, err := ListenUnix(context.Background(), path, 0o600)
		assert.Equal(t, agentwire.CodeFailedPrecondition, agentwire.CodeOf(err), "%v", err)
		assert.ErrorContains(t, err, "directory")
		fi, err := os.Lstat(path)
		require.NoError(t, err)
		assert.True(t, fi.IsDir())
	})
	t.Run("SymlinkToSocketKept", func(t *testing.T) {
		t.Parallel()
		dir := shortDir(t)
		target := filepath.Join(dir, "target.sock")
		staleSocket(t, target)
		path := filepath.Join(dir, "a.sock")
		require.NoError(t, os.Symlink(target, path))
		_, err := ListenUnix(context.Background(), path, 0o600)
		assert.Equal(t, agentwire.CodeFailedPrecondition, agentwire.CodeOf(err), "%v", err)
		_, err = os.Lstat(target)
		assert.NoError(t, err, "the link's target is left alone")
	})
	t.Run("UnreachableSocketKept", func(t *testing.T) {
		t.Parallel()
		if os.Geteuid() == 0 {
			t.Skip("root connects to any socket")
		}
		path := filepath.Join(shortDir(t), "a.sock")
		staleSocket(t, path)
		require.NoError(t, os.Chmod(path, 0))
		_, err := ListenUnix(context.Background(), path, 0o600)
		assert.Equal(t, agentwire.CodePermissionDenied, agentwire.CodeOf(err), "%v", err)
		_, err = os.Lstat(path)
		assert.NoError(t, err, "a socket that could not be probed is kept")
	})
}

// TestListenUnixConcurrent: of several listeners racing for one path,
// exactly one wins; the others fail with AlreadyExists.
func TestListenUnixConcurrent(t *testing.T) {
	t.Parallel()
	path := filepath.Join(shortDir(t), "a.sock")
	const n = 8
	errs := make([]error, n)
	lns := make([]*UnixListener, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { lns[i], errs[i] = ListenUnix(context.Background(), path, 0o600) })
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		if err == nil {
			won++
			defer lns[i].Close()
			continue
		}
		assert.Equal(t, agentwire.CodeAlreadyExists, agentwire.CodeOf(err), "%v", err)
	}
	assert.Equal(t, 1, won)
	requireSocket(t, path, 0o600)
}

func TestListenUnixReplacedFileNotRemoved(t *testing.T) {
	t.Parallel()
	path := filepath.Join(shortDir(t), "a.sock")
	ln, err := ListenUnix(context.Background(), path, 0o600)
	require.NoError(t, err)
	require.NoError(t, os.Remove(path))
	require.NoError(t, os.WriteFile(path, []byte("someone else's"), 0o600))
	require.NoError(t, ln.Close())
	_, err = os.Lstat(path)
	assert.NoError(t, err, "Close removed a file that was not its socket")
}

// TestListenUnixLongPath: a path no socket address holds is refused; one
// that fits, but not with the private directory's name added, still gets a
// private, 0600 socket.
func TestListenUnixLongPath(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	// deep returns a path of exactly n bytes below dir.
	deep := func(n int) string {
		sub := filepath.Join(dir, strings.Repeat("d", n-len(dir)-len("/x.sock")-1))
		require.NoError(t, os.MkdirAll(sub, 0o700))
		p := filepath.Join(sub, "x.sock")
		require.Len(t, p, n)
		return p
	}

	t.Run("TooLong", func(t *testing.T) {
		path := deep(sunPathMax + 1)
		_, err := ListenUnix(context.Background(), path, 0o600)
		assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err), "%v", err)
		assert.ErrorContains(t, err, "socket address")
		_, err = os.Lstat(path)
		assert.ErrorIs(t, err, os.ErrNotExist)
	})
	t.Run("FitsWithoutPrivateDirectory", func(t *testing.T) {
		path := deep(sunPathMax)
		ln, err := ListenUnix(context.Background(), path, 0o600)
		if _, perr := os.Stat("/proc/self/fd"); perr != nil {
			assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err), "%v", err)
			return
		}
		require.NoError(t, err)
		defer ln.Close()
		assert.Equal(t, path, ln.Addr().String())
		requireSocket(t, path, 0o600)
		entries, err := os.ReadDir(filepath.Dir(path))
		require.NoError(t, err)
		assert.Len(t, entries, 1, "no private directory left behind")
	})
}
