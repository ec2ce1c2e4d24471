package testagent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"github.com/agentwire/agentwire"
)

// WAFAgentPackage is the import path of the example agent the suite runs as
// a separate process.
const WAFAgentPackage = "github.com/agentwire/agentwire/examples/waf-agent"

// BuildAgent builds the Go main package pkg into dir and returns the
// binary's path. It runs the go command that built the running test, from
// the current directory, so pkg must be in the module being tested.
func BuildAgent(ctx context.Context, pkg, dir string) (string, error) {
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goCmd); err != nil {
		if goCmd, err = exec.LookPath("go"); err != nil {
			return "", agentwire.Errorf(agentwire.CodeFailedPrecondition, "no go command: %w", err)
		}
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, goCmd, "build", "-o", out, pkg)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", agentwire.Errorf(agentwire.CodeInternal, "go build %s: %w: %s", pkg, err, bytes.TrimSpace(msg))
	}
	return out, nil
}

// AgentProcess is an agent running as a child process. Its methods are
// safe for concurrent use. Every AgentProcess must be stopped ([Stop] or
// [Kill]); both wait for the process and the goroutine that reaps it.
type AgentProcess struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has been waited for
	err    error         // the wait result; read after exited is closed
	stderr lockedBuffer
	term   sync.Once
}

// StartAgent runs bin with args and waits until it prints a line starting
// with "ready" on stdout (the convention of agentwire's example agents).
// ctx bounds that wait, not the process. If the process exits or ctx ends
// first, it is killed and the error quotes its stderr.
func StartAgent(ctx context.Context, bin string, args ...string) (*AgentProcess, error) {
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, agentwire.NewError(agentwire.CodeInternal, err)
	}
	p := &AgentProcess{cmd: cmd, exited: make(chan struct{})}
	cmd.Stderr = &p.stderr
	if err := cmd.Start(); err != nil {
		return nil, agentwire.Errorf(agentwire.CodeUnavailable, "start %s: %w", bin, err)
	}
	ready := make(chan struct{})
	go func() {
		// Read stdout to its end (Wait must not close it under the
		// scanner), then reap the process.
		sc := bufio.NewScanner(stdout)
		once := sync.Once{}
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "ready") {
				once.Do(func() { close(ready) })
			}
		}
		p.err = cmd.Wait()
		close(p.exited)
	}()
	select {
	case <-ready:
		return p, nil
	case <-p.exited:
		return nil, agentwire.Errorf(agentwire.CodeUnavailable, "%s exited before it was ready (%v): %s",
			bin, p.err, strings.TrimSpace(p.Stderr()))
	case <-ctx.Done():
		_ = p.Kill()
		return nil, agentwire.Errorf(agentwire.CodeDeadlineExceeded, "%s not ready: %w: %s",
			bin, ctx.Err(), strings.TrimSpace(p.Stderr()))
	}
}

// Pid returns the process id.
func (p *AgentProcess) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig (SIGSTOP, SIGCONT...) to the process. Signalling a
// process that has exited is not an error.
func (p *AgentProcess) Signal(sig syscall.Signal) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return agentwire.Errorf(agentwire.CodeInternal, "signal %v to %d: %w", sig, p.Pid(), err)
	}
	return nil
}

// Kill sends SIGKILL and waits for the process to be reaped.
func (p *AgentProcess) Kill() error {
	err := p.Signal(syscall.SIGKILL)
	<-p.exited
	return err
}

// Stop ends the process gracefully: SIGTERM (and SIGCONT, in case it is
// stopped), then it waits; if ctx ends first, it kills the process. It
// returns an error if the process had to be killed or exited with a
// failure other than the SIGTERM itself. Stop is idempotent.
func (p *AgentProcess) Stop(ctx context.Context) error {
	p.term.Do(func() {
		_ = p.Signal(syscall.SIGTERM)
		_ = p.Signal(syscall.SIGCONT)
	})
	select {
	case <-p.exited:
	case <-ctx.Done():
		_ = p.Kill()
		return agentwire.Errorf(agentwire.CodeDeadlineExceeded, "%s did not exit on SIGTERM; killed", p.cmd.Path)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() &&
			(ws.Signal() == syscall.SIGTERM || ws.Signal() == syscall.SIGKILL) {
			return nil
		}
		return agentwire.Errorf(agentwire.CodeInternal, "%s: %w: %s", p.cmd.Path, p.err, strings.TrimSpace(p.Stderr()))
	}
	return nil
}

// Stopped reports whether the process is stopped by a signal (SIGSTOP):
// its state in /proc is 'T'. Signals are delivered asynchronously; poll
// this to know when a SIGSTOP has taken effect. Linux only.
func (p *AgentProcess) Stopped() (bool, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid()))
	if err != nil {
		return false, agentwire.NewError(agentwire.CodeUnavailable, err)
	}
	// "pid (comm) state ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false, agentwire.Errorf(agentwire.CodeInternal, "unexpected /proc stat %q", b)
	}
	return b[i+2] == 'T', nil
}

// Exited is closed once the process has exited and been reaped.
func (p *AgentProcess) Exited() <-chan struct{} { return p.exited }

// Stderr returns what the process wrote on stderr so far.
func (p *AgentProcess) Stderr() string { return p.stderr.String() }

func (p *AgentProcess) String() string {
	return fmt.Sprintf("%s[%d]", filepath.Base(p.cmd.Path), p.Pid())
}

// lockedBuffer is a bytes.Buffer written by exec's copying goroutine while
// others read it. It keeps the last 64 KiB.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 64<<10 {
		tail := append([]byte(nil), b.buf.Bytes()[b.buf.Len()-32<<10:]...)
		b.buf.Reset()
		b.buf.Write(tail)
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
