package wire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/agentwire/agentwire"
)

// staleProbeTimeout bounds the dial that tells a stale socket from a live one.
const staleProbeTimeout = time.Second

// sunPathMax is the longest socket path bind and connect take: sun_path's
// size less the terminating NUL (107 bytes on Linux, 103 on the BSDs).
const sunPathMax = len(syscall.RawSockaddrUnix{}.Path) - 1

// ListenUnix creates a Unix socket at path with permission mode and listens
// on it, for both sides:
//
//   - No moment with umask permissions: the socket is bound and chmod'ed
//     in a private directory (0700) next to path, then hard-linked into
//     place; a file that appeared there meanwhile is AlreadyExists.
//   - Only a socket that refuses connections is stale and replaced. A live
//     one is AlreadyExists, a non-socket FailedPrecondition, one that may
//     not be probed PermissionDenied, any other probe failure Unavailable.
//   - A path too long for a socket address is InvalidArgument. If only the
//     private directory makes it too long, the socket is bound through
//     /proc/self/fd (Linux) instead.
//
// Errors are *agentwire.Error. Closing the listener removes the socket
// file, unless something else has replaced it since.
func ListenUnix(ctx context.Context, path string, mode os.FileMode) (*UnixListener, error) {
	if len(path) > sunPathMax {
		return nil, agentwire.Errorf(agentwire.CodeInvalidArgument,
			"listen unix %s: path is %d bytes, a socket address holds %d", path, len(path), sunPathMax)
	}
	if err := removeStale(ctx, path); err != nil {
		return nil, err
	}
	priv, err := os.MkdirTemp(filepath.Dir(path), ".aw-")
	if err != nil {
		return nil, osError(path, "private directory", err)
	}
	defer os.RemoveAll(priv)
	// MkdirTemp's 0700 is subject to the umask; the socket needs the owner's.
	if err := os.Chmod(priv, 0o700); err != nil {
		return nil, osError(path, "private directory", err)
	}
	sock := filepath.Join(priv, "s")
	ln, err := bindIn(priv, sock, path)
	if err != nil {
		return nil, err
	}
	fail := func(what string, err error) (*UnixListener, error) {
		_ = ln.Close()
		return nil, osError(path, what, err)
	}
	if err := os.Chmod(sock, mode.Perm()); err != nil {
		return fail("chmod", err)
	}
	fi, err := os.Lstat(sock)
	if err != nil {
		return fail("stat", err)
	}
	if err := os.Link(sock, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			_ = ln.Close()
			return nil, agentwire.NewError(agentwire.CodeAlreadyExists,
				fmt.Errorf("listen unix %s: a file appeared there while the socket was bound: %w", path, err))
		}
		return fail("link into place", err)
	}
	return &UnixListener{UnixListener: ln, addr: &net.UnixAddr{Name: path, Net: "unix"}, file: fi}, nil
}

// bindIn binds a socket at sock, in the private directory priv. When sock
// is too long for a socket address, it binds through the directory's file
// descriptor (/proc/self/fd/N/s), which is short.
func bindIn(priv, sock, path string) (*net.UnixListener, error) {
	name := sock
	if len(sock) > sunPathMax {
		d, err := os.Open(priv)
		if err != nil {
			return nil, osError(path, "private directory", err)
		}
		defer d.Close()
		name = fmt.Sprintf("/proc/self/fd/%d/s", d.Fd())
		dfi, derr := d.Stat()
		pfi, perr := os.Stat(filepath.Dir(name))
		if derr != nil || perr != nil || !os.SameFile(dfi, pfi) {
			return nil, agentwire.Errorf(agentwire.CodeInvalidArgument,
				"listen unix %s: path too long to bind in a private directory beside it (%d bytes, a socket address holds %d) and /proc/self/fd is not available",
				path, len(sock), sunPathMax)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		return nil, osError(path, "bind", err)
	}
	ln.SetUnlinkOnClose(false) // the socket's name in priv goes with priv
	return ln, nil
}

// removeStale removes the file at path if it is a socket nobody listens on
// (the connection is refused), and fails for anything else there.
func removeStale(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return osError(path, "stat", err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return agentwire.Errorf(agentwire.CodeFailedPrecondition,
			"listen unix %s: exists and is not a socket (%s); not replacing it", path, fileKind(fi))
	}
	ctx, cancel := context.WithTimeout(ctx, staleProbeTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	switch {
	case err == nil:
		_ = c.Close()
		return agentwire.Errorf(agentwire.CodeAlreadyExists, "listen unix %s: a process listens on it", path)
	case errors.Is(err, os.ErrPermission):
		return agentwire.NewError(agentwire.CodePermissionDenied,
			fmt.Errorf("listen unix %s: cannot connect to the socket there to tell whether it is in use; not replacing it: %w", path, err))
	case !errors.Is(err, syscall.ECONNREFUSED):
		return agentwire.NewError(agentwire.CodeUnavailable,
			fmt.Errorf("listen unix %s: cannot tell whether the socket there is in use; not replacing it: %w", path, err))
	}
	// Remove only the socket that refused: another process may have
	// replaced it since the probe.
	switch now, err := os.Lstat(path); {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return osError(path, "stat", err)
	case !os.SameFile(now, fi):
		return agentwire.Errorf(agentwire.CodeAlreadyExists, "listen unix %s: replaced while being checked", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return osError(path, "remove stale socket", err)
	}
	return nil
}

// fileKind names what a non-socket file is, for error messages.
func fileKind(fi os.FileInfo) string {
	switch t := fi.Mode().Type(); {
	case t == 0:
		return "a regular file"
	case t&os.ModeDir != 0:
		return "a directory"
	case t&os.ModeSymlink != 0:
		return "a symbolic link"
	case t&os.ModeNamedPipe != 0:
		return "a named pipe"
	case t&os.ModeDevice != 0:
		return "a device"
	default:
		return "a special file"
	}
}

// osError wraps a failed file-system step: PermissionDenied for a
// permission error, Unavailable otherwise.
func osError(path, what string, err error) error {
	code := agentwire.CodeUnavailable
	if errors.Is(err, os.ErrPermission) {
		code = agentwire.CodePermissionDenied
	}
	return agentwire.NewError(code, fmt.Errorf("listen unix %s: %s: %w", path, what, err))
}

// UnixListener is a Unix-socket listener from [ListenUnix] that owns its
// socket file: Close removes it, unless something else has replaced it.
// It is safe for concurrent use.
type UnixListener struct {
	*net.UnixListener
	addr *net.UnixAddr
	file os.FileInfo // the socket file, to recognise it at removal
	once sync.Once
}

var _ net.Listener = (*UnixListener)(nil)

// Addr is the socket's path (the listener was bound under another name).
func (l *UnixListener) Addr() net.Addr { return l.addr }

// Close stops listening and removes the socket file.
func (l *UnixListener) Close() error {
	err := l.UnixListener.Close()
	l.Remove()
	return err
}

// Remove removes the socket file if it is still this listener's, once; it
// does not close the listener.
func (l *UnixListener) Remove() {
	l.once.Do(func() {
		if fi, err := os.Lstat(l.addr.Name); err == nil && os.SameFile(fi, l.file) {
			_ = os.Remove(l.addr.Name)
		}
	})
}
