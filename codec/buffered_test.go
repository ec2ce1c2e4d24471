package codec

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

func pingFrame(t *testing.T, seq uint64) []byte {
	t.Helper()
	b, err := AppendFrame(nil, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{Sequence: seq}}}, 0)
	require.NoError(t, err)
	return b
}

func TestFrameBuffered(t *testing.T) {
	t.Parallel()
	one, two := pingFrame(t, 1), pingFrame(t, 2)
	pr, pw := io.Pipe()
	r := NewReader(pr, 0)
	require.False(t, r.FrameBuffered(), "nothing read yet")
	go func() {
		// Two whole frames and half of a third arrive in one write.
		_, _ = pw.Write(append(append(append([]byte{}, one...), two...), one[:3]...))
	}()
	_, _, err := r.ReadFrame()
	require.NoError(t, err)
	require.True(t, r.FrameBuffered(), "the second frame came with the first")
	_, _, err = r.ReadFrame()
	require.NoError(t, err)
	require.False(t, r.FrameBuffered(), "only part of the third frame is here")
	go func() { _, _ = pw.Write(one[3:]) }()
	_, p, err := r.ReadFrame()
	require.NoError(t, err)
	require.NotEmpty(t, p)
	require.False(t, r.FrameBuffered())
	_ = pw.Close()
}
