package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/agentwire/agentwire/codec"
)

// TestEnvelopeGuard: the guard passes well-formed gRPC messages byte for
// byte, however the body is split into reads, and fails at the prefix of
// the first bad one, and on every read after it.
func TestEnvelopeGuard(t *testing.T) {
	t.Parallel()
	msg := func(flags byte, payload []byte) []byte {
		b := []byte{flags, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
		return append(b, payload...)
	}
	good := append(msg(0, bytes.Repeat([]byte("a"), 100)), msg(0, nil)...)
	good = append(good, msg(0, bytes.Repeat([]byte("b"), 1000))...)
	for name, tt := range map[string]struct {
		bad      []byte
		sentinel error
	}{
		"none":       {nil, nil},
		"compressed": {msg(1, []byte("zz")), codec.ErrMalformed},
		"over limit": {msg(0, make([]byte, 2000)), codec.ErrFrameTooLarge},
	} {
		for split, wrap := range map[string]func(io.Reader) io.Reader{
			"whole":    func(r io.Reader) io.Reader { return r },
			"one byte": iotest.OneByteReader,
			"halves":   iotest.HalfReader,
		} {
			t.Run(name+"/"+split, func(t *testing.T) {
				t.Parallel()
				body := append(append([]byte(nil), good...), tt.bad...)
				g := &envelopeGuard{body: io.NopCloser(wrap(bytes.NewReader(body))), max: 1024}
				got, err := io.ReadAll(g)
				if tt.sentinel == nil {
					if err != nil || !bytes.Equal(got, body) {
						t.Fatalf("read %d of %d bytes, err %v", len(got), len(body), err)
					}
					return
				}
				if !errors.Is(err, tt.sentinel) {
					t.Fatalf("err %v, want %v", err, tt.sentinel)
				}
				// Everything before the bad prefix, and possibly some of the
				// prefix itself, went through; nothing of its payload did.
				if len(got) < len(good) || len(got) >= len(good)+5 || !bytes.Equal(got[:len(good)], good) {
					t.Fatalf("passed %d bytes, want the %d good ones (and at most 4 of the bad prefix)", len(got), len(good))
				}
				if n, err := g.Read(make([]byte, 10)); n != 0 || !errors.Is(err, tt.sentinel) {
					t.Fatalf("read after the failure: %d, %v", n, err)
				}
				if g.failure() == nil {
					t.Fatal("failure() is nil")
				}
			})
		}
	}
}
