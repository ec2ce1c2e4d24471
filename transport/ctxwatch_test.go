package transport_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// silentPeer is an agent that never answers the events it reads before
// answer is closed, and answers the later ones in batches of batch events.
// silent counts the events it read and left unanswered: a test closes
// answer only once the peer has read all those meant to be ignored.
func silentPeer(t *testing.T, batch int) (endpoint string, answer chan struct{}, silent *atomic.Int64) {
	t.Helper()
	answer = make(chan struct{})
	silent = new(atomic.Int64)
	peer, err := testagent.ListenFramedPeer(filepath.Join(shortTempDir(t), "a.sock"), func(*agentv2.ProxyToAgent) testagent.Script {
		return func(c *testagent.PeerConn) {
			if c.Accept("silent") != nil {
				return
			}
			var held []*agentv2.ProxyToAgent
			for {
				ev, err := c.RecvEvent()
				if err != nil {
					return
				}
				select {
				case <-answer:
				default:
					silent.Add(1)
					continue // silent: never answered
				}
				if held = append(held, ev); len(held) < batch {
					continue
				}
				for _, ev := range held {
					if c.Reply(ev, nil) != nil {
						return
					}
				}
				held = held[:0]
			}
		}
	})
	require.NoError(t, err)
	t.Cleanup(peer.Close)
	return peer.Endpoint(), answer, silent
}

// sendAll sends n events at once, each with the context ctxOf returns
// for it, and returns a channel with their errors.
func sendAll(c transport.Conn, n int, ctxOf func(i int) context.Context) <-chan error {
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := c.Send(ctxOf(i), bodyChunk("r", uint32(i), "x"))
			errs <- err
		}()
	}
	return errs
}

// waitInFlight waits until c has n calls in flight.
func waitInFlight(t *testing.T, c transport.Conn, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return c.Status().InFlight == n }, 5*time.Second, time.Millisecond)
}

// TestSharedContextCancel: calls that share a context (through derived
// contexts with values too) share one watch, all fail with Canceled when
// it is cancelled, and leave no watch behind; the connection goes on.
func TestSharedContextCancel(t *testing.T) {
	t.Parallel()
	const n = 16
	endpoint, answer, silent := silentPeer(t, n)
	c, err := transport.Dial(ctxT(t, 10*time.Second), endpoint)
	require.NoError(t, err)
	defer c.Close(context.Background())

	type key struct{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := sendAll(c, n, func(i int) context.Context {
		if i%2 == 0 {
			return context.WithValue(ctx, key{}, i)
		}
		return ctx
	})
	waitInFlight(t, c, n)
	assert.Equal(t, 1, transport.Watches(c))
	start := time.Now()
	cancel()
	for range n {
		err := <-errs
		assert.Equal(t, agentwire.CodeCanceled, agentwire.CodeOf(err), "%v", err)
	}
	assert.Less(t, time.Since(start), time.Second)
	assert.Equal(t, 0, c.Status().InFlight)
	assert.Equal(t, 0, transport.Watches(c))

	// Answered calls on a shared context (answered together: all are
	// pending at once) get their answers; their watch stays, idle, for the
	// context's next calls. Only one idle watch is kept, and none once its
	// context ends.
	// The peer may still be reading the cancelled calls' events: they must
	// stay unanswered, not fill the next batch.
	require.Eventually(t, func() bool { return silent.Load() == n }, 5*time.Second, time.Millisecond)
	close(answer)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	for range 2 {
		errs = sendAll(c, n, func(int) context.Context { return ctx2 })
		for range n {
			assert.NoError(t, <-errs)
		}
		assert.Equal(t, 1, transport.Watches(c))
	}
	ctx3, cancel3 := context.WithCancel(context.Background())
	defer cancel3()
	errs = sendAll(c, n, func(int) context.Context { return ctx3 })
	for range n {
		assert.NoError(t, <-errs)
	}
	assert.Equal(t, 1, transport.Watches(c))
	cancel3()
	require.Eventually(t, func() bool { return transport.Watches(c) == 0 }, 5*time.Second, time.Millisecond)
	require.NoError(t, c.Err())
}

// TestSharedContextDeadline: calls sharing a context with a deadline
// fail with DeadlineExceeded at that deadline.
func TestSharedContextDeadline(t *testing.T) {
	t.Parallel()
	endpoint, _, _ := silentPeer(t, 1)
	c, err := transport.Dial(ctxT(t, 10*time.Second), endpoint)
	require.NoError(t, err)
	defer c.Close(context.Background())

	const timeout = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	errs := sendAll(c, 8, func(int) context.Context { return ctx })
	for range 8 {
		err := <-errs
		assert.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(err), "%v", err)
	}
	took := time.Since(start)
	assert.GreaterOrEqual(t, took, timeout)
	assert.Less(t, took, timeout+time.Second)
	assert.Equal(t, 0, transport.Watches(c))
}

// TestSharedContextClose: closing the connection fails watched calls
// with Unavailable and unregisters the watch, so cancelling the context
// afterwards touches nothing (goleak checks no goroutine is left).
func TestSharedContextClose(t *testing.T) {
	t.Parallel()
	endpoint, _, _ := silentPeer(t, 1)
	c, err := transport.Dial(ctxT(t, 10*time.Second), endpoint)
	require.NoError(t, err)

	ctx, cancel := context.WithCancel(context.Background())
	const n = 8
	errs := sendAll(c, n, func(int) context.Context { return ctx })
	waitInFlight(t, c, n)
	require.Equal(t, 1, transport.Watches(c))
	require.NoError(t, c.Close(ctxT(t, 5*time.Second)))
	for range n {
		err := <-errs
		assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err), "%v", err)
	}
	assert.Equal(t, 0, transport.Watches(c))
	cancel()
}

// TestSharedContextRace: contexts cancelled while their calls are being
// sent and answered end every call once, with its answer or Canceled,
// and leave no watch behind.
func TestSharedContextRace(t *testing.T) {
	t.Parallel()
	peer, err := testagent.ListenFramedPeer(filepath.Join(shortTempDir(t), "a.sock"), func(*agentv2.ProxyToAgent) testagent.Script {
		return func(c *testagent.PeerConn) {
			if c.Accept("serving") == nil {
				c.Serve()
			}
		}
	})
	require.NoError(t, err)
	defer peer.Close()
	c, err := transport.Dial(ctxT(t, 10*time.Second), peer.Endpoint())
	require.NoError(t, err)
	defer c.Close(context.Background())

	for round := range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for i := range 32 {
			wg.Go(func() {
				_, err := c.Send(ctx, bodyChunk("r", uint32(i), "x"))
				if err != nil {
					assert.Equal(t, agentwire.CodeCanceled, agentwire.CodeOf(err), "round %d: %v", round, err)
				}
			})
		}
		time.Sleep(time.Duration(round%5) * 100 * time.Microsecond)
		cancel()
		wg.Wait()
	}
	assert.Equal(t, 0, c.Status().InFlight)
	require.Eventually(t, func() bool { return transport.Watches(c) == 0 }, 5*time.Second, time.Millisecond)
	require.NoError(t, c.Err())
}
