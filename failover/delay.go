package failover

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// windowSize is how many recent latencies a hedge delay is computed from;
// the quantile is recomputed every windowStep samples.
const (
	windowSize = 256
	windowStep = 32
)

// window keeps an agent's recent request-header latencies and their
// quantile. It is safe for concurrent use.
type window struct {
	mu   sync.Mutex // mu guards ring and n
	ring [windowSize]time.Duration
	n    int
	// cached is the last quantile computed, 0 until windowStep samples.
	cached atomic.Int64
}

func (w *window) add(d time.Duration, q float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ring[w.n%windowSize] = d
	w.n++
	if w.n%windowStep != 0 {
		return
	}
	s := slices.Clone(w.ring[:min(w.n, windowSize)])
	slices.Sort(s)
	w.cached.Store(int64(s[min(int(q*float64(len(s))), len(s)-1)]))
}
