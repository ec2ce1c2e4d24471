package transport

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// Encoded stream messages are written whole by the encoder, so their
// buffers need no zeroing. grpc-go's default pool zeroes every buffer it
// hands out, and in tiers of 256 bytes, then 4 KiB: each 600-byte event
// cost a 4 KiB clear.

// Size classes of msgPool: powers of two from minMsgClass to maxMsgClass.
// The smallest is above grpc-go's pooling threshold (1 KiB), under which
// it would not return a buffer to its pool.
const (
	minMsgClass = 11 // 2 KiB
	maxMsgClass = 16 // 64 KiB
)

// msgPool is a mem.BufferPool that does not zero what it hands out. Larger
// buffers than its largest class are allocated and left to the collector.
type msgPool struct {
	classes [maxMsgClass - minMsgClass + 1]sync.Pool
}

var messageBuffers = new(msgPool)

var _ mem.BufferPool = (*msgPool)(nil)

// class returns the index of the smallest class that holds n bytes, or -1.
func (p *msgPool) class(n int) int {
	c := max(bits.Len(uint(n-1)), minMsgClass)
	if n <= 0 {
		c = minMsgClass
	}
	if c > maxMsgClass {
		return -1
	}
	return c - minMsgClass
}

// Get returns a buffer of length n; its contents are arbitrary.
func (p *msgPool) Get(n int) *[]byte {
	c := p.class(n)
	if c < 0 {
		b := make([]byte, n)
		return &b
	}
	if bp, ok := p.classes[c].Get().(*[]byte); ok {
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]byte, n, 1<<(c+minMsgClass))
	return &b
}

// Put returns a buffer from Get.
func (p *msgPool) Put(bp *[]byte) {
	n := cap(*bp)
	if n&(n-1) != 0 {
		return
	}
	if c := p.class(n); c >= 0 && 1<<(c+minMsgClass) == n {
		*bp = (*bp)[:0]
		p.classes[c].Put(bp)
	}
}
