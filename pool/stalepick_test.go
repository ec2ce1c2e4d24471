package pool

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestStalePickOfRetiredConn: a pick from a picker built before its
// connection was retired (retirement races the picker's rebuild) finds no
// slot there and picks again; the event is not failed with the limiter's
// internal error.
func TestStalePickOfRetiredConn(t *testing.T) {
	p, err := New(WithProbeInterval(time.Hour, time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	for range 2 {
		require.NoError(t, p.AdoptConn("waf", newMemConn()))
	}
	a := p.lookup("waf")
	ready := a.snap.Load().ready
	require.Len(t, ready, 2)
	// Retired, but still in the published picker: the race's window.
	for _, sc := range ready[:1] {
		sc.slots.Retire()
	}
	for i := range 20 {
		_, err := p.Send(context.Background(), "waf", headers("r"+string(rune('a'+i))))
		require.NoError(t, err)
	}
}
