package httpguard

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// frame builds a frame: masked when key is given.
func frame(fin bool, opcode byte, payload []byte, key []byte) []byte {
	b0 := opcode
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	mask := byte(0)
	if key != nil {
		mask = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		out = append(out, mask|byte(n))
	case n < 1<<16:
		out = append(out, mask|126, byte(n>>8), byte(n))
	default:
		out = append(out, mask|127, 0, 0, 0, 0, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	if key != nil {
		out = append(out, key...)
		for i, c := range payload {
			out = append(out, c^key[i%4])
		}
		return out
	}
	return append(out, payload...)
}

func TestParseFrameHeader(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		b      []byte
		length uint64
		size   int
	}{
		{"short", frame(true, 1, []byte("hi"), nil), 2, 2},
		{"masked", frame(true, 2, []byte("hi"), []byte{1, 2, 3, 4}), 2, 6},
		{"16-bit", frame(true, 2, make([]byte, 300), nil), 300, 4},
		{"64-bit", frame(true, 2, make([]byte, 70000), []byte{1, 2, 3, 4}), 70000, 14},
	} {
		h, ok := parseFrameHeader(tc.b)
		require.True(t, ok, tc.name)
		assert.Equal(t, tc.length, h.length, tc.name)
		assert.Equal(t, tc.size, h.size, tc.name)
		for i := range h.size {
			_, ok := parseFrameHeader(tc.b[:i])
			assert.False(t, ok, "%s: %d bytes of header", tc.name, i)
		}
	}
}

// TestFramesFeed: whatever the stream is cut into, the same bytes pass in
// the same order; frames over the limit pass uninspected.
func TestFramesFeed(t *testing.T) {
	t.Parallel()
	key := []byte{9, 8, 7, 6}
	var stream []byte
	stream = append(stream, frame(false, 1, []byte("frag"), key)...)
	stream = append(stream, frame(true, 0, []byte("ment"), key)...)
	stream = append(stream, frame(true, 9, nil, key)...)
	stream = append(stream, frame(true, 2, bytes.Repeat([]byte{1}, 500), key)...) // over the limit
	stream = append(stream, frame(true, 1, []byte("last"), key)...)
	for _, step := range []int{1, 3, 7, len(stream)} {
		x := &exchange{rt: &route{maxFrame: 100}}
		f := frames{x: x, clientToServer: true}
		var got []byte
		for off := 0; off < len(stream); off += step {
			out, err := f.feed(stream[off:min(off+step, len(stream))])
			require.NoError(t, err)
			got = append(got, out...)
		}
		assert.Equal(t, stream, got, "step %d", step)
		assert.Empty(t, f.buf)
	}
}
