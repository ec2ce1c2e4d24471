package agenttest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"

	"github.com/agentwire/agentwire"
)

// Process is an agent running as a child process, so that Go tests can run
// the suite against agents written in other languages. Its methods are
// safe for concurrent use.
type Process struct {
	cmd    *exec.Cmd
	ready  string
	exited chan struct{} // closed once the process has been waited for
	err    error         // the wait result; read after exited is closed
	stderr lockedBuffer
	once   sync.Once
}

// StartProcess starts argv and waits until it prints a line beginning with
// "ready" on stdout, the convention of agentwire's example agents. ctx
// bounds the wait, not the process: stop it with [Process.Stop]. If the
// process exits or ctx ends first, StartProcess stops it and returns an
// error that quotes its stderr.
func StartProcess(ctx context.Context, argv []string, env ...string) (*Process, error) {
	if len(argv) == 0 {
		return nil, agentwire.Errorf(agentwire.CodeInvalidArgument, "agenttest: empty command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if len(env) > 0 {
		cmd.Env = append(cmd.Environ(), env...)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, exited: make(chan struct{})}
	cmd.Stderr = &p.stderr
	if err := cmd.Start(); err != nil {
		return nil, agentwire.NewError(agentwire.CodeUnavailable, fmt.Errorf("start %s: %w", argv[0], err))
	}
	ready := make(chan string, 1)
	go func() {
		// Drain stdout (Wait must not close it under the scanner), then reap.
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "ready") {
				select {
				case ready <- line:
				default:
				}
			}
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	select {
	case p.ready = <-ready:
		return p, nil
	case <-p.exited:
		return nil, agentwire.Errorf(agentwire.CodeUnavailable, "%s exited before it was ready (%v): %s",
			argv[0], p.err, strings.TrimSpace(p.Stderr()))
	case <-ctx.Done():
		_ = p.Stop(context.Background())
		return nil, agentwire.Errorf(agentwire.CodeDeadlineExceeded, "%s not ready: %w: %s",
			argv[0], ctx.Err(), strings.TrimSpace(p.Stderr()))
	}
}

// ReadyLine returns the line the process announced itself with, for
// example "ready uds=/run/a.sock grpc=127.0.0.1:50051".
func (p *Process) ReadyLine() string { return p.ready }

// Stderr returns what the process wrote on stderr so far.
func (p *Process) Stderr() string { return p.stderr.String() }

// Stop sends SIGTERM and waits for the process to exit; when ctx ends
// first it kills the process. It returns the exit error of a process that
// did not exit cleanly on SIGTERM. Stop is idempotent.
func (p *Process) Stop(ctx context.Context) error {
	p.once.Do(func() { _ = p.cmd.Process.Signal(syscall.SIGTERM) })
	select {
	case <-p.exited:
	case <-ctx.Done():
		_ = p.cmd.Process.Kill()
		<-p.exited
		return agentwire.Errorf(agentwire.CodeDeadlineExceeded, "%s did not exit on SIGTERM; killed", p.cmd.Path)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) && !ee.Exited() {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil // died of the signal without a handler: that is a stop too
		}
	}
	return p.err
}

// lockedBuffer is a bytes.Buffer written by exec's copying goroutine while
// others read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
