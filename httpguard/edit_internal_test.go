package httpguard

import (
	"io"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// TestCloseWith: the client's close frame carries the agent's code and
// reason (cut to fit a control frame), or 1008 for a block.
func TestCloseWith(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("r", 200)
	for _, tc := range []struct {
		err  error
		want []byte
	}{
		{ErrFrameBlocked, []byte{0x88, 2, 0x03, 0xf0}},
		{&FrameClosedError{Code: 4000, Reason: "bye"}, []byte{0x88, 5, 0x0f, 0xa0, 'b', 'y', 'e'}},
		{&FrameClosedError{Code: 1000, Reason: long}, append([]byte{0x88, 125, 0x03, 0xe8}, long[:123]...)},
	} {
		client, server := net.Pipe()
		c := &frameConn{Conn: server}
		go func() {
			c.closeWith(tc.err)
			server.Close()
		}()
		got, err := io.ReadAll(client)
		require.NoError(t, err)
		assert.Equal(t, tc.want, got)
		client.Close()
	}
}

// TestEditApplied: a mutation replaces the bytes the agent saw; the rest
// of the chunk passes.
func TestEditApplied(t *testing.T) {
	t.Parallel()
	e := newEdit()
	assert.Equal(t, []byte("abcdef"), e.applied([]byte("abcdef"), 3), "no mutation")
	e.body = &agentv2.BodyMutation{Data: []byte("XY")}
	assert.Equal(t, []byte("XYdef"), e.applied([]byte("abcdef"), 3))
	e.body = &agentv2.BodyMutation{Data: []byte{}}
	assert.Equal(t, []byte("def"), e.applied([]byte("abcdef"), 3))
}
