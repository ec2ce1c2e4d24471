package shadow

import (
	"runtime"
	"testing"
)

// TestNewAllocatesLittle: an interceptor holds no queue; building one
// costs well under a megabyte before any event is mirrored.
func TestNewAllocatesLittle(t *testing.T) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	ic, err := New("a", "b")
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	ic.Close()
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("New allocated %d bytes, want under 1 MiB", n)
	}
}
