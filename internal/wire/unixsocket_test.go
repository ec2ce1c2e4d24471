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
	requireAnswers(t, path)
}

func requireAnswers(t *testing.T, path string) {
	t.Helper()
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
		path := filepath.Join(shortDir(t), "a.sock")
		old := syscall.Umask(umask)
		ln, err := ListenUnix(context.Background(), path, 0o600)
		syscall.Umask(old)
		require.NoError(t, err, "umask %#o", umask)
		requireSocket(t, path, 0o600)
		require.NoError(t, ln.Close())
	}
}

// TestListenUnixExisting: only a socket that refuses connections is
// replaced; whatever else is at the path is left as it was, with an error.
func TestListenUnixExisting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// setup puts something at path and returns a check that it is
		// still there, unchanged.
		setup func(t *testing.T, path string) (kept func(t *testing.T))
		want  agentwire.Code // 0: replaced
		text  string         // in the error
	}{{
		name: "StaleSocket",
		setup: func(t *testing.T, path string) func(*testing.T) {
			staleSocket(t, path)
			return nil
		},
	}, {
		name: "LiveSocket",
		setup: func(t *testing.T, path string) func(*testing.T) {
			live, err := net.Listen("unix", path)
			require.NoError(t, err)
			t.Cleanup(func() { _ = live.Close() })
			return func(t *testing.T) { requireAnswers(t, path) }
		},
		want: agentwire.CodeAlreadyExists, text: "listens",
	}, {
		name: "RegularFile",
		setup: func(t *testing.T, path string) func(*testing.T) {
			require.NoError(t, os.WriteFile(path, []byte("precious"), 0o600))
			return func(t *testing.T) {
				b, err := os.ReadFile(path)
				require.NoError(t, err)
				assert.Equal(t, "precious", string(b))
			}
		},
		want: agentwire.CodeFailedPrecondition, text: "regular file",
	}, {
		name: "Directory",
		setup: func(t *testing.T, path string) func(*testing.T) {
			require.NoError(t, os.Mkdir(path, 0o700))
			return func(t *testing.T) {
				fi, err := os.Lstat(path)
				require.NoError(t, err)
				assert.True(t, fi.IsDir())
			}
		},
		want: agentwire.CodeFailedPrecondition, text: "directory",
	}, {
		name: "SymlinkToStaleSocket",
		setup: func(t *testing.T, path string) func(*testing.T) {
			target := path + ".target"
			staleSocket(t, target)
			require.NoError(t, os.Symlink(target, path))
			return func(t *testing.T) {
				_, err := os.Lstat(target)
				assert.NoError(t, err, "the link's target is left alone")
			}
		},
		want: agentwire.CodeFailedPrecondition, text: "symbolic link",
	}, {
		name: "UnreachableSocket",
		setup: func(t *testing.T, path string) func(*testing.T) {
			if os.Geteuid() == 0 {
				t.Skip("root connects to any socket")
			}
			staleSocket(t, path)
			require.NoError(t, os.Chmod(path, 0))
			return func(t *testing.T) {
				_, err := os.Lstat(path)
				assert.NoError(t, err, "a socket that could not be probed is kept")
			}
		},
		want: agentwire.CodePermissionDenied, text: "cannot connect",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(shortDir(t), "a.sock")
			kept := tc.setup(t, path)
			ln, err := ListenUnix(context.Background(), path, 0o600)
			if tc.want == 0 {
				require.NoError(t, err)
				defer ln.Close()
				requireSocket(t, path, 0o600)
				return
			}
			assert.Equal(t, tc.want, agentwire.CodeOf(err), "%v", err)
			assert.ErrorContains(t, err, tc.text)
			kept(t)
		})
	}
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

// TestListenUnixRemovesOnlyItsFile: a listener removes its socket file
// once, and never a file that has replaced it (here a restarted listener's
// socket, and a file created after Remove).
func TestListenUnixRemovesOnlyItsFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(shortDir(t), "a.sock")
	old, err := ListenUnix(context.Background(), path, 0o600)
	require.NoError(t, err)
	require.NoError(t, os.Remove(path))
	next := listen(t, path, 0o600)
	require.NoError(t, old.Close())
	requireSocket(t, path, 0o600)

	next.Remove()
	_, err = os.Lstat(path)
	require.ErrorIs(t, err, os.ErrNotExist, "Remove removes the socket file")
	require.NoError(t, os.WriteFile(path, []byte("later"), 0o600))
	require.NoError(t, next.Close())
	_, err = os.Lstat(path)
	assert.NoError(t, err, "Close after Remove removed a file that was not its socket")
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
