package failover

import "sync/atomic"

// budget is a token bucket in the manner of gRPC's retry throttling: each
// request earns ratio tokens, up to max; each extra attempt (a failover, a
// hedge) spends a whole one, and none is made without it. A dying fleet
// so sees at most ratio extra attempts per request, plus the max burst,
// rather than double its load. Tokens are kept in thousandths, in one
// atomic word.
type budget struct {
	milli      atomic.Int64
	max, ratio int64 // in thousandths
}

func newBudget(max, ratio float64) *budget {
	b := &budget{max: int64(max * 1000), ratio: int64(ratio * 1000)}
	b.milli.Store(b.max)
	return b
}

// earn adds a request's share.
func (b *budget) earn() {
	for {
		cur := b.milli.Load()
		if cur >= b.max || b.ratio == 0 {
			return
		}
		if b.milli.CompareAndSwap(cur, min(cur+b.ratio, b.max)) {
			return
		}
	}
}

// spend takes one token for an extra attempt; false if there is none.
func (b *budget) spend() bool {
	for {
		cur := b.milli.Load()
		if cur < 1000 {
			return false
		}
		if b.milli.CompareAndSwap(cur, cur-1000) {
			return true
		}
	}
}
