package pool

import (
	"context"
	"time"
)

// backoff yields exponentially growing delays with ±20% jitter, capped,
// forever. It is used by one goroutine at a time.
type backoff struct {
	base, max time.Duration
	rand      func() uint64
	attempt   int
}

func (b *backoff) next() time.Duration {
	d := b.base
	for i := 0; i < b.attempt && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	if d < b.max {
		b.attempt++
	}
	// Jitter in [0.8d, 1.2d).
	frac := float64(b.rand()>>11) / (1 << 53)
	return time.Duration(float64(d) * (0.8 + 0.4*frac))
}

func (b *backoff) reset() { b.attempt = 0 }

// sleep waits d or until ctx ends; it reports whether the full d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
