package wire

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"google.golang.org/grpc/mem"
)

func TestBufferPool(t *testing.T) {
	t.Parallel()
	p := new(BufferPool)
	for _, tt := range []struct{ n, cap int }{
		{0, 2 << 10}, {1, 2 << 10}, {600, 2 << 10}, {2 << 10, 2 << 10}, {2<<10 + 1, 4 << 10},
		{16 << 10, 16 << 10}, {64 << 10, 64 << 10}, {64<<10 + 1, 64<<10 + 1}, {1 << 20, 1 << 20},
	} {
		bp := p.Get(tt.n)
		assert.Len(t, *bp, tt.n)
		assert.Equal(t, tt.cap, cap(*bp), "Get(%d)", tt.n)
		// Buffers in a class are above grpc-go's pooling threshold, so
		// grpc-go gives them back.
		if tt.cap <= 64<<10 {
			assert.False(t, mem.IsBelowBufferPoolingThreshold(cap(*bp)))
		}
		p.Put(bp)
	}
	// A buffer of no class is dropped, not handed out again.
	odd := make([]byte, 3000)
	p.Put(&odd)
	for range 10 {
		assert.NotEqual(t, 3000, cap(*p.Get(2500)))
	}
}

func TestBufferPoolReuses(t *testing.T) {
	p := new(BufferPool)
	bp := p.Get(700)
	(*bp)[0] = 42
	p.Put(bp)
	allocs := testing.AllocsPerRun(100, func() {
		b := p.Get(900)
		p.Put(b)
	})
	assert.Zero(t, allocs)
}
