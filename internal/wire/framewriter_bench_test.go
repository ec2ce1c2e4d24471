package wire

import (
	"context"
	"io"
	"runtime"
	"testing"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/frametest"
)

// BenchmarkWriter writes a typical request event per op, from one
// goroutine and from 64, to a stream that takes everything at once.
func BenchmarkWriter(b *testing.B) {
	m := frametest.RequestHeaders(1)
	size := int64(m.SizeVT() + agentv2.FrameHeaderSize)
	start := func(b *testing.B) (*FrameWriter, func()) {
		w := NewFrameWriter(io.Discard, 0, 0)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		return w, func() {
			cancel()
			if err := <-done; err != nil {
				b.Error(err)
			}
		}
	}
	b.Run("writers=1", func(b *testing.B) {
		w, stop := start(b)
		defer stop()
		ctx := context.Background()
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			if err := w.Write(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("writers=64", func(b *testing.B) {
		w, stop := start(b)
		defer stop()
		ctx := context.Background()
		procs := runtime.GOMAXPROCS(0)
		b.SetParallelism((64 + procs - 1) / procs)
		b.SetBytes(size)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := w.Write(ctx, m); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
