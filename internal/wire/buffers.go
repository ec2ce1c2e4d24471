package wire

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// Encoded messages are written whole by their encoder, so their buffers
// need no zeroing. grpc-go's default pool zeroes every buffer it hands out,
// and in tiers of 256 bytes, then 4 KiB: each 600-byte event cost a 4 KiB
// clear.

// Size classes of BufferPool: powers of two from minClass to maxClass. The
// smallest is above grpc-go's pooling threshold (1 KiB), under which it
// would not return a buffer to its pool.
const (
	minClass = 11 // 2 KiB
	maxClass = 16 // 64 KiB
)

// BufferPool is a mem.BufferPool that does not zero what it hands out.
// Larger buffers than its largest class are allocated and left to the
// collector. Safe for concurrent use.
type BufferPool struct {
	classes [maxClass - minClass + 1]sync.Pool
}

// Buffers holds the buffers messages are encoded into ([Marshal]) and, on
// gRPC, handed to grpc-go, which returns them here once written.
var Buffers = new(BufferPool)

var _ mem.BufferPool = (*BufferPool)(nil)

// class returns the index of the smallest class that holds n bytes, or -1.
func (p *BufferPool) class(n int) int {
	c := max(bits.Len(uint(n-1)), minClass)
	if n <= 0 {
		c = minClass
	}
	if c > maxClass {
		return -1
	}
	return c - minClass
}

// Get returns a buffer of length n; its contents are arbitrary.
func (p *BufferPool) Get(n int) *[]byte {
	c := p.class(n)
	if c < 0 {
		b := make([]byte, n)
		return &b
	}
	if bp, ok := p.classes[c].Get().(*[]byte); ok {
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]byte, n, 1<<(c+minClass))
	return &b
}

// Put returns a buffer from Get.
func (p *BufferPool) Put(bp *[]byte) {
	n := cap(*bp)
	if n&(n-1) != 0 {
		return
	}
	if c := p.class(n); c >= 0 && 1<<(c+minClass) == n {
		*bp = (*bp)[:0]
		p.classes[c].Put(bp)
	}
}
