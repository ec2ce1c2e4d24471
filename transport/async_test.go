package transport_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/transport"
)

// answers collects what Go's done functions hear, by correlation id, and
// fails the test if one is called twice.
type answers struct {
	t    *testing.T
	mu   sync.Mutex
	got  map[string]goAnswer
	all  chan struct{} // closed when want answers arrived
	want int
}

type goAnswer struct {
	resp *agentv2.AgentResponse
	err  error
}

func newAnswers(t *testing.T, want int) *answers {
	return &answers{t: t, got: map[string]goAnswer{}, all: make(chan struct{}), want: want}
}

func (a *answers) done(corr string) func(*agentv2.AgentResponse, error) {
	return func(resp *agentv2.AgentResponse, err error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		if _, dup := a.got[corr]; dup {
			a.t.Errorf("done called twice for %s", corr)
			return
		}
		a.got[corr] = goAnswer{resp, err}
		if len(a.got) == a.want {
			close(a.all)
		}
	}
}

func (a *answers) wait(t *testing.T) map[string]goAnswer {
	t.Helper()
	select {
	case <-a.all:
	case <-time.After(10 * time.Second):
		t.Fatalf("only %d of %d answers arrived", len(a.got), a.want)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.got
}

func dialAsync(t *testing.T, endpoint string, opts ...transport.Option) transport.AsyncConn {
	t.Helper()
	c, err := transport.Dial(ctxT(t, 10*time.Second), endpoint, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	ac, ok := c.(transport.AsyncConn)
	require.True(t, ok, "the package's connections implement AsyncConn")
	return ac
}

// reverseOrder answers each batch of 8 events in reverse order, each with
// a header naming the event's data.
func reverseOrder(*agentv2.ProxyToAgent) testagent.Script { return dataBatches(8) }

// dataBatches answers each batch of n events in reverse order, each with a
// header naming the event's data.
func dataBatches(n int) testagent.Script {
	return func(c *testagent.PeerConn) {
		if c.Accept("reverse-order") != nil {
			return
		}
		var held []*agentv2.ProxyToAgent
		for {
			ev, err := c.RecvEvent()
			if err != nil {
				return
			}
			if held = append(held, ev); len(held) < n {
				continue
			}
			for i := len(held) - 1; i >= 0; i-- {
				data := string(held[i].GetRequestBodyChunk().GetData())
				resp := &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}},
					RequestHeaders: []*agentv2.HeaderOp{{Operation: &agentv2.HeaderOp_Set{
						Set: &agentv2.Header{Name: "x-data", Value: data}}}}}
				if c.Reply(held[i], resp) != nil {
					return
				}
			}
			held = held[:0]
		}
	}
}

// TestGoMatchesEachAnswer: on the Unix socket and on gRPC, a peer that
// answers events out of order gives every done the answer to its own
// event, once.
func TestGoMatchesEachAnswer(t *testing.T) {
	t.Parallel()
	listen := map[string]func(t *testing.T) (*testagent.Peer, error){
		"uds": func(t *testing.T) (*testagent.Peer, error) {
			return testagent.ListenFramedPeer(filepath.Join(shortTempDir(t), "a.sock"), reverseOrder)
		},
		"grpc": func(*testing.T) (*testagent.Peer, error) {
			return testagent.ListenGRPCPeer("127.0.0.1:0", reverseOrder)
		},
	}
	for name, listen := range listen {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const n = 64
			peer, err := listen(t)
			require.NoError(t, err)
			t.Cleanup(peer.Close)
			c := dialAsync(t, peer.Endpoint())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			a := newAnswers(t, n)
			for i := range n {
				corr := fmt.Sprintf("r%d", i)
				require.NoError(t, c.Go(ctx, bodyChunk(corr, 0, "data of "+corr), a.done(corr)))
			}
			for corr, ans := range a.wait(t) {
				require.NoError(t, ans.err, corr)
				assert.Equal(t, corr, ans.resp.GetCorrelationId())
				assert.Equal(t, "data of "+corr, headerOp(ans.resp.GetRequestHeaders(), "x-data"))
			}
			assert.Equal(t, 0, c.Status().InFlight)
		})
	}
}

// TestGoEnds: calls nobody waits on still end, each once: with their
// context, with the connection, and with a lying answer, which fails the
// connection and reaches no call.
func TestGoEnds(t *testing.T) {
	t.Parallel()
	t.Run("context", func(t *testing.T) {
		t.Parallel()
		endpoint, _, _ := silentPeer(t, 1)
		c := dialAsync(t, endpoint)
		ctx, cancel := context.WithCancel(context.Background())
		a := newAnswers(t, 8)
		for i := range 8 {
			corr := fmt.Sprintf("r%d", i)
			require.NoError(t, c.Go(ctx, bodyChunk(corr, 0, "x"), a.done(corr)))
		}
		waitInFlight(t, c, 8)
		cancel()
		for corr, ans := range a.wait(t) {
			assert.Equal(t, agentwire.CodeCanceled, agentwire.CodeOf(ans.err), corr)
		}
		assert.Equal(t, 0, transport.Watches(c))
		require.NoError(t, c.Err(), "a caller's cancel does not end the connection")
	})
	t.Run("connection", func(t *testing.T) {
		t.Parallel()
		endpoint, _, _ := silentPeer(t, 1)
		c := dialAsync(t, endpoint)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		a := newAnswers(t, 8)
		for i := range 8 {
			corr := fmt.Sprintf("r%d", i)
			require.NoError(t, c.Go(ctx, bodyChunk(corr, 0, "x"), a.done(corr)))
		}
		waitInFlight(t, c, 8)
		require.NoError(t, c.Close(context.Background()))
		for corr, ans := range a.wait(t) {
			assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(ans.err), corr)
		}
		err := c.Go(ctx, bodyChunk("late", 0, "x"), func(*agentv2.AgentResponse, error) {
			t.Error("done called for an event Go refused")
		})
		assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err))
	})
	t.Run("lying agent", func(t *testing.T) {
		t.Parallel()
		peer, err := testagent.ListenFramedPeer(filepath.Join(shortTempDir(t), "a.sock"), func(*agentv2.ProxyToAgent) testagent.Script {
			return func(c *testagent.PeerConn) {
				if c.Accept("liar") != nil {
					return
				}
				first, err := c.RecvEvent()
				if err != nil {
					return
				}
				second, err := c.RecvEvent()
				if err != nil {
					return
				}
				// The first event's id, the second's request: another
				// request's block must reach no call.
				lie := testagent.Response(second, &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Block{
					Block: &agentv2.BlockDecision{Status: 403}}})
				lie.EventId = first.GetEventId()
				_ = c.Send(lie)
				c.Drain()
			}
		})
		require.NoError(t, err)
		t.Cleanup(peer.Close)
		c := dialAsync(t, peer.Endpoint())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a := newAnswers(t, 2)
		require.NoError(t, c.Go(ctx, bodyChunk("r1", 0, "x"), a.done("r1")))
		require.NoError(t, c.Go(ctx, bodyChunk("r2", 0, "x"), a.done("r2")))
		for corr, ans := range a.wait(t) {
			assert.Nil(t, ans.resp, corr)
			assert.ErrorIs(t, ans.err, transport.ErrProtocol, corr)
		}
		assert.ErrorIs(t, c.Err(), transport.ErrMismatch)
	})
}

// TestGoNeverWaits: with a peer that reads nothing, Go fills the socket and
// the write queue, then fails at once with ErrBusy rather than wait; the
// events it refused never reach their done function.
func TestGoNeverWaits(t *testing.T) {
	t.Parallel()
	stop := make(chan struct{})
	peer, err := testagent.ListenFramedPeer(filepath.Join(shortTempDir(t), "a.sock"), func(*agentv2.ProxyToAgent) testagent.Script {
		return func(c *testagent.PeerConn) {
			if c.Accept("deaf") != nil {
				return
			}
			<-stop // reads nothing more
		}
	})
	require.NoError(t, err)
	c := dialAsync(t, peer.Endpoint(), transport.WithMaxPending(256<<10))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	big := string(make([]byte, 64<<10))
	var busy error
	sent := 0
	start := time.Now()
	for i := range 1000 {
		err := c.Go(ctx, bodyChunk(fmt.Sprintf("r%d", i), 0, big), func(*agentv2.AgentResponse, error) {})
		if err != nil {
			busy = err
			break
		}
		sent++
	}
	require.Error(t, busy, "1000 events of 64 KiB fit a socket nobody reads")
	assert.ErrorIs(t, busy, transport.ErrBusy)
	assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(busy))
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Equal(t, sent, c.Status().InFlight, "the refused event is not pending")
	close(stop)
	require.NoError(t, c.Close(context.Background()))
	peer.Close()
}

// TestGoChecksEdits: an answer whose body mutation names another chunk
// fails the call, as it does for Send.
func TestGoChecksEdits(t *testing.T) {
	t.Parallel()
	c := dialAsync(t, answering(t, func(*agentv2.ProxyToAgent) *agentv2.AgentResponse {
		return &agentv2.AgentResponse{Decision: &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}},
			RequestBodyMutation: &agentv2.BodyMutation{ChunkIndex: 7}}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := newAnswers(t, 2)
	require.NoError(t, c.Go(ctx, bodyChunk("r7", 7, "x"), a.done("r7")))
	require.NoError(t, c.Go(ctx, bodyChunk("r3", 3, "x"), a.done("r3")))
	got := a.wait(t)
	require.NoError(t, got["r7"].err)
	assert.True(t, errors.Is(got["r3"].err, transport.ErrMisplacedEdit), "%v", got["r3"].err)
	assert.Nil(t, got["r3"].resp)
}

// answering is a peer that answers every event at once with answer's
// response (allow for nil).
func answering(t *testing.T, answer func(*agentv2.ProxyToAgent) *agentv2.AgentResponse) (endpoint string) {
	t.Helper()
	peer, err := testagent.ListenFramedPeer(filepath.Join(shortTempDir(t), "a.sock"), func(*agentv2.ProxyToAgent) testagent.Script {
		return func(c *testagent.PeerConn) {
			if c.Accept("answering") != nil {
				return
			}
			for {
				ev, err := c.RecvEvent()
				if err != nil || c.Reply(ev, answer(ev)) != nil {
					return
				}
			}
		}
	})
	require.NoError(t, err)
	t.Cleanup(peer.Close)
	return peer.Endpoint()
}

// timedPeer answers every event at once and records when each arrived.
func timedPeer(t *testing.T) (endpoint string, arrivals func() []time.Time) {
	t.Helper()
	var (
		mu sync.Mutex
		at []time.Time
	)
	endpoint = answering(t, func(*agentv2.ProxyToAgent) *agentv2.AgentResponse {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		return nil
	})
	return endpoint, func() []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Time(nil), at...)
	}
}

// TestGoWindow: Go's events wait for the async window and leave together;
// a Send ends the window at once, taking them along; Close does not wait
// for a window.
func TestGoWindow(t *testing.T) {
	t.Parallel()
	t.Run("held together", func(t *testing.T) {
		t.Parallel()
		const window = 200 * time.Millisecond
		endpoint, arrivals := timedPeer(t)
		c := dialAsync(t, endpoint, transport.WithAsyncWindow(window))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a := newAnswers(t, 3)
		start := time.Now()
		for i := range 3 {
			corr := fmt.Sprintf("r%d", i)
			require.NoError(t, c.Go(ctx, bodyChunk(corr, 0, "x"), a.done(corr)))
		}
		for corr, ans := range a.wait(t) {
			require.NoError(t, ans.err, corr)
		}
		at := arrivals()
		require.Len(t, at, 3)
		assert.GreaterOrEqual(t, at[0].Sub(start), window*3/4, "held for the window")
		assert.Less(t, at[2].Sub(at[0]), window/2, "and sent together")
	})
	t.Run("a send ends it", func(t *testing.T) {
		t.Parallel()
		endpoint, _ := timedPeer(t)
		c, ctx, a := holdOne(t, endpoint)
		start := time.Now()
		_, err := c.Send(ctx, bodyChunk("sent", 0, "x"))
		require.NoError(t, err)
		require.NoError(t, a.wait(t)["held"].err)
		assert.Less(t, time.Since(start), 5*time.Second)
	})
	t.Run("close", func(t *testing.T) {
		t.Parallel()
		endpoint, _, _ := silentPeer(t, 1)
		c, _, a := holdOne(t, endpoint)
		start := time.Now()
		require.NoError(t, c.Close(context.Background()))
		assert.Less(t, time.Since(start), 5*time.Second)
		assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(a.wait(t)["held"].err))
	})
}

// holdOne dials endpoint with an hour-long async window and sends one
// event ("held") with Go, which the window holds; ctx lasts the test.
func holdOne(t *testing.T, endpoint string) (transport.AsyncConn, context.Context, *answers) {
	t.Helper()
	c := dialAsync(t, endpoint, transport.WithAsyncWindow(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	a := newAnswers(t, 1)
	require.NoError(t, c.Go(ctx, bodyChunk("held", 0, "x"), a.done("held")))
	return c, ctx, a
}

// TestGoRacesSend: Go calls whose context ends as they are sent, on a
// connection whose write queue keeps filling (so some writes fail with
// ErrBusy), beside Sends on the same connection: every Send gets its own
// answer or an error, and every Go's done is called once at most (and once
// exactly when Go accepted the event). Bounded: 1,500 Go calls.
func TestGoRacesSend(t *testing.T) {
	t.Parallel()
	peer, err := testagent.ListenFramedPeer(filepath.Join(shortTempDir(t), "a.sock"), func(*agentv2.ProxyToAgent) testagent.Script {
		return dataBatches(1)
	})
	require.NoError(t, err)
	t.Cleanup(peer.Close)
	c := dialAsync(t, peer.Endpoint(), transport.WithMaxPending(8<<10), transport.WithAsyncWindow(0))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	big := string(make([]byte, 2<<10))
	var wg sync.WaitGroup
	var accepted, called sync.Map
	for g := range 3 {
		wg.Go(func() {
			for i := range 500 {
				corr := fmt.Sprintf("go%d-%d", g, i)
				gctx, gcancel := context.WithCancel(ctx)
				var once sync.Once
				err := c.Go(gctx, bodyChunk(corr, 0, big), func(resp *agentv2.AgentResponse, err error) {
					if _, dup := called.LoadOrStore(corr, true); dup {
						t.Errorf("done called twice for %s", corr)
					}
					if err == nil && resp.GetCorrelationId() != corr {
						t.Errorf("%s got the answer for %s", corr, resp.GetCorrelationId())
					}
				})
				once.Do(gcancel) // races the send
				if err == nil {
					accepted.Store(corr, true)
				}
			}
		})
	}
	for g := range 3 {
		wg.Go(func() {
			for i := range 150 {
				corr := fmt.Sprintf("send%d-%d", g, i)
				sctx, scancel := context.WithTimeout(ctx, 2*time.Second)
				resp, err := c.Send(sctx, bodyChunk(corr, 0, "data of "+corr))
				scancel()
				if err == nil {
					assert.Equal(t, corr, resp.GetCorrelationId())
					assert.Equal(t, "data of "+corr, headerOp(resp.GetRequestHeaders(), "x-data"))
				}
			}
		})
	}
	wg.Wait()
	require.Eventually(t, func() bool {
		missing := 0
		accepted.Range(func(k, _ any) bool {
			if _, ok := called.Load(k); !ok {
				missing++
			}
			return true
		})
		return missing == 0
	}, 10*time.Second, 10*time.Millisecond, "an accepted Go never heard of its end")
}
