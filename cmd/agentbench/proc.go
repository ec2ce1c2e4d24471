package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// wafAgentPackage is the example agent benchmarked by default.
const wafAgentPackage = "github.com/agentwire/agentwire/examples/waf-agent"

// buildWAFAgent builds the example agent into dir and returns its path.
func buildWAFAgent(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "waf-agent")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, wafAgentPackage)
	cmd.Dir = moduleDir()
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", wafAgentPackage, err, b)
	}
	return out, nil
}

// moduleDir is the nearest directory at or above the working directory with
// a go.mod, so that building the agent works from anywhere in the module.
func moduleDir() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// child is a server process the bench started: the agent or the baseline
// server. Close stops it.
type child struct {
	name   string
	cmd    *exec.Cmd
	stderr *tailBuffer
	exited chan struct{}
	err    error // set before exited closes
	// addrs holds what the child printed as "listening <name> <address>"
	// before "ready": the TCP addresses it bound (port 0 picks a free one
	// with no race). Complete once startChild returns.
	addrs map[string]string
}

// startChild runs argv, waits for it to print "ready" on stdout, and
// returns it. The child gets its own process group so that a stray signal
// to the bench does not reach it before the bench stops it in order.
func startChild(ctx context.Context, name string, argv []string, env []string) (*child, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c := &child{name: name, cmd: cmd, stderr: &tailBuffer{max: 8 << 10}, exited: make(chan struct{}), addrs: map[string]string{}}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			if signalled {
				continue
			}
			line := strings.TrimSpace(sc.Text())
			if f := strings.Fields(line); len(f) == 3 && f[0] == "listening" {
				c.addrs[f[1]] = f[2]
			}
			if line == "ready" {
				close(ready)
				signalled = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	timer := time.NewTimer(60 * time.Second)
	defer timer.Stop()
	select {
	case <-ready:
		return c, nil
	case <-c.exited:
		return nil, fmt.Errorf("%s exited before it was ready: %v\n%s", name, c.err, c.stderr)
	case <-timer.C:
		c.close()
		return nil, fmt.Errorf("%s not ready within 60s\n%s", name, c.stderr)
	case <-ctx.Done():
		c.close()
		return nil, ctx.Err()
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// close asks the child to stop (SIGTERM), kills it if it has not exited
// within 5 seconds, and waits for it.
func (c *child) close() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// alive fails if the child has exited.
func (c *child) alive() error {
	select {
	case <-c.exited:
		return fmt.Errorf("%s exited: %v\n%s", c.name, c.err, c.stderr)
	default:
		return nil
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// anyLoopbackPort is what the bench asks children to listen on for TCP: a
// port the kernel picks, which the child reports back (see child.addrs).
const anyLoopbackPort = "127.0.0.1:0"

// addr returns the address the child reported for listener name, or an
// error naming what it printed.
func (c *child) addr(name string) (string, error) {
	if a, ok := c.addrs[name]; ok {
		return a, nil
	}
	return "", fmt.Errorf("%s reported no %q listener (it printed %v)", c.name, name, c.addrs)
}

// waitFor polls f until it reports true, ctx ends, or 10 seconds pass.
func waitFor(ctx context.Context, what string, f func() bool) error {
	deadline := time.Now().Add(10 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
