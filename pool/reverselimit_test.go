package pool

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire"
	sdk "github.com/agentwire/agentwire/agent"
)

// TestReverseConnsOverLimit: an agent that dials more reverse connections
// than the pool takes gets the pool's limit; the others are refused at
// registration, with ResourceExhausted and the reason, and back off
// instead of churning; a slot that frees is taken again.
func TestReverseConnsOverLimit(t *testing.T) {
	t.Parallel()
	const limit, dialled = 4, 10
	p := newTestPool(t, WithMaxReverseConns(limit))
	var refusals refusalLog
	path := adoptingListener(t, p, refusals.add)

	var warnings warnCount
	srv, err := sdk.NewServer(newRecorder("rev"), sdk.WithAgentID("rev"), sdk.WithLogger(slog.New(&warnings)))
	require.NoError(t, err)
	var seen refusalLog
	d, err := sdk.NewReverseDialer(srv, "unix://"+path, sdk.WithConnections(dialled),
		sdk.WithReconnectBackoff(10*time.Millisecond, 2*time.Second),
		sdk.WithDialErrorHandler(func(err error, _ time.Duration) { seen.add(err) }))
	require.NoError(t, err)
	start := time.Now()
	dctx, stop := context.WithCancel(context.Background())
	runDone := make(chan struct{})
	go func() {
		defer close(runDone)
		_ = d.Run(dctx)
	}()
	t.Cleanup(func() {
		stop()
		<-runDone
		_ = d.Close(context.Background())
		srv.Close()
	})

	require.Eventually(t, func() bool {
		st := d.Stats()
		s, err := p.AgentStats("rev")
		return err == nil && countState(s, ConnReady) == limit && st.Connected == limit && st.Refused == dialled-limit
	}, 5*time.Second, time.Millisecond)

	// Over a 3 s window: the refused connections retry once soon, then at
	// most every second (half the longest backoff). When the pool refused
	// them after their handshake, the same dialer made about 60 attempts,
	// every one registered.
	time.Sleep(3*time.Second - time.Since(start))
	st := d.Stats()
	attempts := st.Registered + st.Rejected + st.Failed
	t.Logf("attempts in 3 s: %d (%+v)", attempts, st)
	assert.LessOrEqual(t, attempts, uint64(dialled+3*(dialled-limit)))
	assert.Equal(t, uint64(limit), st.Registered, "no registration the pool refused later")
	assert.Equal(t, limit, st.Connected)
	assert.Equal(t, limit, len(stats(t, p, "rev").Conns))

	// What the agent saw: the code and the pool's reason, logged once.
	for _, err := range seen.all() {
		assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(err), "%v", err)
		assert.ErrorIs(t, err, sdk.ErrRegistrationRejected)
		assert.Contains(t, err.Error(), `pool: too many reverse connections for agent: "rev" already holds 4`)
	}
	assert.Len(t, seen.all(), int(st.Rejected))
	assert.Equal(t, 1, warnings.load(), "one warning for the streak")
	for _, err := range refusals.all() {
		assert.ErrorIs(t, err, ErrReverseLimit)
	}

	// An adopted connection ends: the dialer fills its slot, and no more.
	a := p.lookup("rev")
	a.mu.Lock()
	victim := a.conns[0].conn
	a.mu.Unlock()
	require.NoError(t, victim.Close(testCtx(t)))
	require.Eventually(t, func() bool {
		st := d.Stats()
		return st.Registered == limit+1 && st.Connected == limit &&
			countState(stats(t, p, "rev"), ConnReady) == limit
	}, 5*time.Second, time.Millisecond)
	assert.Equal(t, limit, len(stats(t, p, "rev").Conns))
}

// refusalLog collects errors.
type refusalLog struct {
	mu   sync.Mutex
	errs []error
}

func (r *refusalLog) add(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *refusalLog) all() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

// warnCount is a slog handler counting the dialer's refusal warnings.
type warnCount struct {
	mu sync.Mutex
	n  int
}

func (h *warnCount) Enabled(context.Context, slog.Level) bool { return true }
func (h *warnCount) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *warnCount) WithGroup(string) slog.Handler            { return h }
func (h *warnCount) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn && strings.Contains(r.Message, "refused registration") {
		h.mu.Lock()
		h.n++
		h.mu.Unlock()
	}
	return nil
}

func (h *warnCount) load() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}
