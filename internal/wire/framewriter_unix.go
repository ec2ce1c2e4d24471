//go:build unix

package wire

import (
	"errors"
	"io"
	"syscall"
)

// nonBlockingWrite returns a function that writes to w's socket with one
// non-blocking system call, or nil if w is not a socket (TLS connections,
// pipes, test writers). The function is not safe for concurrent use; the
// FrameWriter calls it only from the goroutine that owns the stream.
func nonBlockingWrite(w io.Writer) func([]byte) (int, error) {
	sc, ok := w.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	t := &tryWrite{rc: rc}
	t.fn = t.write // bound once: no closure allocated per write
	return t.do
}

// tryWrite holds one non-blocking write's arguments and results.
type tryWrite struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool
	p   []byte
	n   int
	err error
}

func (t *tryWrite) do(p []byte) (int, error) {
	t.p, t.n, t.err = p, 0, nil
	err := t.rc.Write(t.fn)
	t.p = nil
	if err != nil {
		return 0, err
	}
	return t.n, t.err
}

func (t *tryWrite) write(fd uintptr) bool {
	n, err := syscall.Write(int(fd), t.p)
	if n < 0 {
		n = 0
	}
	if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
		err = nil
	}
	t.n, t.err = n, err
	return true // never wait for the socket: the flusher does
}
