package agenttest

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// childMode makes the test binary act as a child process for the
// StartProcess tests: "ready" waits for SIGTERM, "crash" fails at once,
// "silent" never announces itself, "stubborn" ignores SIGTERM.
const childMode = "AGENTTEST_CHILD"

func init() {
	switch os.Getenv(childMode) {
	case "":
		return
	case "ready":
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		fmt.Println("starting")
		fmt.Println("ready uds=/x.sock")
		<-sig
		os.Exit(0)
	case "crash":
		fmt.Fprintln(os.Stderr, "cannot bind: address in use")
		os.Exit(3)
	case "silent":
		time.Sleep(time.Minute)
		os.Exit(0)
	case "stubborn":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
}

func self(t *testing.T) []string {
	exe, err := os.Executable()
	require.NoError(t, err)
	return []string{exe, "-test.run=^$"}
}

func TestStartProcess(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := StartProcess(ctx, self(t), childMode+"=ready")
	require.NoError(t, err)
	assert.Equal(t, "ready uds=/x.sock", p.ReadyLine())
	require.NoError(t, p.Stop(ctx))
	require.NoError(t, p.Stop(ctx), "Stop is idempotent")
}

func TestStartProcessExitsEarly(t *testing.T) {
	t.Parallel()
	_, err := StartProcess(context.Background(), self(t), childMode+"=crash")
	require.Error(t, err)
	assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err))
	assert.Contains(t, err.Error(), "exited before it was ready (exit status 3): cannot bind: address in use")
}

func TestStartProcessNotReady(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := StartProcess(ctx, self(t), childMode+"=silent")
	require.Error(t, err)
	assert.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(err))
	assert.Less(t, time.Since(start), 5*time.Second)
}

func TestStopKillsStubbornProcess(t *testing.T) {
	t.Parallel()
	p, err := StartProcess(context.Background(), self(t), childMode+"=stubborn")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = p.Stop(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "did not exit on SIGTERM; killed")
}

func TestStartProcessMissingProgram(t *testing.T) {
	t.Parallel()
	_, err := StartProcess(context.Background(), []string{"/nonexistent/agent"})
	require.Error(t, err)
	assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err))
	_, err = StartProcess(context.Background(), nil)
	assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err))
}
