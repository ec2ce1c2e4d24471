//go:build !unix

package wire

import "io"

// nonBlockingWrite is unavailable here: the flusher does every write.
func nonBlockingWrite(io.Writer) func([]byte) (int, error) { return nil }
