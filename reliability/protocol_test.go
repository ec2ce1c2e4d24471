package reliability_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Limits of the connections a misbehaving peer gets.
const (
	faultMaxFrame     = 64 << 10
	faultHandshake    = time.Second
	faultCallTimeout  = 5 * time.Second
	faultOutcomeLimit = 6 * time.Second // a fault must have its outcome by then
	floodSize         = 5000            // stray messages in a flood (> the 4096 pauses kept)
	pingFlood         = 50000           // pings from an agent that reads no pongs
)

// fault is one way an agent breaks the protocol, and what the proxy must
// make of it.
type fault struct {
	name string
	// framedOnly faults need frame types or raw bytes.
	framedOnly bool
	// script misbehaves on the victim connection.
	script testagent.Script
	// check runs against the victim: c is nil if the dial failed with
	// dialErr. It sends what the script waits for and asserts the outcome.
	check func(t *testing.T, c transport.Conn, dialErr error)
}

// sendAsync sends one event on c and returns where its result arrives.
func sendAsync(c transport.Conn, corr string) <-chan error {
	ch := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), faultCallTimeout)
		defer cancel()
		_, err := c.Send(ctx, headersEvent(corr, "/"))
		ch <- err
	}()
	return ch
}

func result(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(faultOutcomeLimit):
		t.Fatal("the call hung")
		return nil
	}
}

// served: the call succeeds and the connection stays open.
func served(t *testing.T, c transport.Conn, dialErr error) {
	t.Helper()
	require.NoError(t, dialErr)
	require.NoError(t, result(t, sendAsync(c, "victim-1")))
	require.NoError(t, c.Err())
}

// closedWith: the call in flight fails with code and sentinel, and so does
// the connection.
func closedWith(code agentwire.Code, sentinels ...error) func(*testing.T, transport.Conn, error) {
	return func(t *testing.T, c transport.Conn, dialErr error) {
		t.Helper()
		require.NoError(t, dialErr)
		err := result(t, sendAsync(c, "victim-1"))
		require.Error(t, err)
		assert.Equal(t, code, agentwire.CodeOf(err), "call error %v", err)
		for _, s := range sentinels {
			assert.ErrorIs(t, err, s)
		}
		select {
		case <-c.Done():
		case <-time.After(faultOutcomeLimit):
			t.Fatal("connection not closed")
		}
		assert.Equal(t, code, agentwire.CodeOf(c.Err()), "connection error %v", c.Err())
		assert.Equal(t, transport.StateClosed, c.Status().State)
	}
}

// dialFailsWith: the dial fails with code and sentinel.
func dialFailsWith(code agentwire.Code, sentinel error) func(*testing.T, transport.Conn, error) {
	return func(t *testing.T, c transport.Conn, dialErr error) {
		t.Helper()
		require.Error(t, dialErr)
		assert.Nil(t, c)
		assert.Equal(t, code, agentwire.CodeOf(dialErr), "dial error %v", dialErr)
		if sentinel != nil {
			assert.ErrorIs(t, dialErr, sentinel)
		}
	}
}

// counted: the call succeeds, the connection stays open, and the stray
// message is counted.
func counted(field func(transport.Status) uint64, want uint64) func(*testing.T, transport.Conn, error) {
	return func(t *testing.T, c transport.Conn, dialErr error) {
		t.Helper()
		served(t, c, dialErr)
		eventually(t, faultOutcomeLimit, "stray message counted", func() bool { return field(c.Status()) >= want })
		assert.Equal(t, want, field(c.Status()))
		require.NoError(t, c.Err())
	}
}

func duplicateResponses(s transport.Status) uint64 { return s.DuplicateResponses }
func unknownFrames(s transport.Status) uint64      { return s.UnknownFrames }

// afterFirstEvent accepts the handshake, waits for an event, runs f, then
// serves normally.
func afterFirstEvent(f func(c *testagent.PeerConn, ev *agentv2.ProxyToAgent) error) testagent.Script {
	return func(c *testagent.PeerConn) {
		if c.Accept("victim") != nil {
			return
		}
		ev, err := c.RecvEvent()
		if err != nil {
			return
		}
		if f(c, ev) != nil {
			return
		}
		c.Serve()
	}
}

func encode(t testing.TB, m interface{ MarshalVT() ([]byte, error) }) []byte {
	b, err := m.MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// faults is every protocol violation the suite injects.
func faults(t *testing.T) []fault {
	healthPayload := encode(t, &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Health{Health: &agentv2.HealthStatus{AgentId: "victim"}}})
	// A message case this version does not know: field 50, empty.
	unknownCase := []byte{0x92, 0x03, 0x00}
	// The ping flood's peer reports when it has sent everything, and holds
	// the connection, unread, until the check is done.
	pingsSent, holdPings := make(chan struct{}), make(chan struct{})
	return []fault{
		{name: "PingFloodUnread", script: func(c *testagent.PeerConn) {
			sent := sync.OnceFunc(func() { close(pingsSent) })
			defer sent()
			if c.Accept("victim") != nil {
				return
			}
			for i := range pingFlood {
				if c.Send(&agentv2.AgentToProxy{EventId: uint64(i), Message: &agentv2.AgentToProxy_Ping{Ping: &agentv2.Ping{
					Sequence: uint64(i), TimestampMs: 1}}}) != nil {
					return
				}
			}
			sent()
			<-holdPings
		}, check: func(t *testing.T, c transport.Conn, dialErr error) {
			require.NoError(t, dialErr)
			defer close(holdPings)
			before := runtime.NumGoroutine()
			select {
			case <-pingsSent:
			case <-time.After(20 * time.Second):
				t.Fatal("the peer could not send its pings")
			}
			time.Sleep(200 * time.Millisecond) // let the proxy read them all
			grew := runtime.NumGoroutine() - before
			assert.Less(t, grew, 1000, "the proxy started a goroutine per unanswered ping")
			assert.NoError(t, c.Err())
		}},

		{name: "ResponseForUnknownID", script: afterFirstEvent(func(c *testagent.PeerConn, ev *agentv2.ProxyToAgent) error {
			// An event id the proxy never sent: the agent lost track.
			stray := testagent.Response(ev, nil)
			stray.EventId += 1 << 20
			if err := c.Send(stray); err != nil {
				return err
			}
			return c.Reply(ev, nil)
		}), check: closedWith(agentwire.CodeInternal, transport.ErrProtocol)},

		{name: "DuplicateResponse", script: afterFirstEvent(func(c *testagent.PeerConn, ev *agentv2.ProxyToAgent) error {
			if err := c.Reply(ev, nil); err != nil {
				return err
			}
			return c.Reply(ev, nil)
		}), check: counted(duplicateResponses, 1)},

		{name: "ProxyDirectionFrameType", framedOnly: true, script: afterFirstEvent(func(c *testagent.PeerConn, ev *agentv2.ProxyToAgent) error {
			// The agent echoes the proxy's own request-headers frame.
			if err := c.SendRaw(agentv2.ProxyToAgentFrameRequestHeaders, encode(t, ev)); err != nil {
				return err
			}
			return c.Reply(ev, nil)
		}), check: counted(unknownFrames, 1)},

		{name: "UnknownFrameType", script: afterFirstEvent(func(c *testagent.PeerConn, ev *agentv2.ProxyToAgent) error {
			// Framed: type 0x7f. gRPC: an unknown oneof case.
			if err := c.SendRaw(0x7f, unknownCase); err != nil {
				return err
			}
			return c.Reply(ev, nil)
		}), check: counted(unknownFrames, 1)},

		{name: "UnknownFrameFlood", script: afterFirstEvent(func(c *testagent.PeerConn, ev *agentv2.ProxyToAgent) error {
			for range floodSize {
				if err := c.SendRaw(0x7f, unknownCase); err != nil {
					return err
				}
			}
			return c.Reply(ev, nil)
		}), check: counted(unknownFrames, floodSize)},

		{name: "FrameTypeMismatchesPayload", framedOnly: true, script: afterFirstEvent(func(c *testagent.PeerConn, ev *agentv2.ProxyToAgent) error {
			return c.SendRaw(agentv2.AgentToProxyFrameResponse, healthPayload)
		}), check: closedWith(agentwire.CodeInternal, transport.ErrProtocol, codec.ErrMalformed)},

		{name: "MalformedPayload", script: afterFirstEvent(func(c *testagent.PeerConn, ev *agentv2.ProxyToAgent) error {
			return c.SendRaw(agentv2.AgentToProxyFrameResponse, []byte{0x12, 0xff, 0xff, 0xff, 0xff, 0x0f})
		}), check: closedWith(agentwire.CodeInternal, transport.ErrProtocol, codec.ErrMalformed)},

		{name: "FrameOverLimit", script: afterFirstEvent(func(c *testagent.PeerConn, ev *agentv2.ProxyToAgent) error {
			// A real response, four times the proxy's limit.
			resp := testagent.Response(ev, nil)
			resp.GetResponse().Audit = &agentv2.AuditMetadata{Tags: []string{string(make([]byte, 4*faultMaxFrame))}}
			if c.Transport() == transport.TransportGRPC {
				return c.Send(resp)
			}
			// Framed: only the header goes out; the proxy must refuse it
			// from the announced length alone.
			var hdr [agentv2.FrameHeaderSize]byte
			binary.BigEndian.PutUint32(hdr[:], uint32(1+resp.SizeVT()))
			hdr[4] = byte(agentv2.AgentToProxyFrameResponse)
			return c.WriteBytes(hdr[:])
		}), check: closedWith(agentwire.CodeInternal, transport.ErrProtocol, codec.ErrFrameTooLarge)},

		{name: "ZeroLengthFrame", framedOnly: true, script: afterFirstEvent(func(c *testagent.PeerConn, ev *agentv2.ProxyToAgent) error {
			return c.WriteBytes([]byte{0, 0, 0, 0})
		}), check: closedWith(agentwire.CodeInternal, transport.ErrProtocol, codec.ErrZeroLength)},

		{name: "TruncatedFrame", framedOnly: true, script: afterFirstEvent(func(c *testagent.PeerConn, ev *agentv2.ProxyToAgent) error {
			frame, err := codec.AppendFrame(nil, testagent.Response(ev, nil), 0)
			if err != nil {
				return err
			}
			_ = c.WriteBytes(frame[:len(frame)/2])
			c.Close()
			return fmt.Errorf("closed")
		}), check: closedWith(agentwire.CodeUnavailable, transport.ErrPeerGone, codec.ErrTruncated)},

		{name: "ClosedMidCall", script: afterFirstEvent(func(c *testagent.PeerConn, ev *agentv2.ProxyToAgent) error {
			c.Close()
			return fmt.Errorf("closed")
		}), check: closedWith(agentwire.CodeUnavailable, transport.ErrPeerGone)},

		{name: "HandshakeNeverSent", script: func(c *testagent.PeerConn) { c.Drain() },
			check: dialFailsWith(agentwire.CodeDeadlineExceeded, nil)},

		{name: "NotHandshakeFirst", script: func(c *testagent.PeerConn) {
			_ = c.Send(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Health{Health: &agentv2.HealthStatus{AgentId: "victim"}}})
			c.Drain()
		}, check: dialFailsWith(agentwire.CodeInternal, transport.ErrProtocol)},

		{name: "HandshakeRejected", script: func(c *testagent.PeerConn) {
			msg := "no"
			_ = c.Send(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{Handshake: &agentv2.HandshakeResponse{
				ProtocolVersion: 2, Success: false, Error: &msg}}})
			c.Drain()
		}, check: dialFailsWith(agentwire.CodeFailedPrecondition, transport.ErrHandshakeRejected)},

		{name: "WrongProtocolVersion", script: func(c *testagent.PeerConn) {
			hs := testagent.HandshakeResponse("victim")
			hs.GetHandshake().ProtocolVersion = 3
			_ = c.Send(hs)
			c.Drain()
		}, check: dialFailsWith(agentwire.CodeFailedPrecondition, transport.ErrIncompatibleVersion)},

		{name: "HandshakeTwice", script: afterFirstEvent(func(c *testagent.PeerConn, ev *agentv2.ProxyToAgent) error {
			return c.Accept("victim")
		}), check: closedWith(agentwire.CodeInternal, transport.ErrProtocol)},

		{name: "RegistrationAfterHandshake", script: afterFirstEvent(func(c *testagent.PeerConn, ev *agentv2.ProxyToAgent) error {
			return c.Send(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Registration{Registration: &agentv2.RegistrationRequest{
				ProtocolVersion: 2, AgentId: "victim"}}})
		}), check: closedWith(agentwire.CodeInternal, transport.ErrProtocol)},

		{name: "PauseForever", script: func(c *testagent.PeerConn) {
			if c.Accept("victim") != nil {
				return
			}
			_ = c.Send(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_FlowControl{FlowControl: &agentv2.FlowControlSignal{
				Action: agentv2.FlowAction_FLOW_ACTION_PAUSE}}})
			c.Serve()
		}, check: func(t *testing.T, c transport.Conn, dialErr error) {
			require.NoError(t, dialErr)
			eventually(t, faultOutcomeLimit, "paused", func() bool { return c.Paused("") })
			assert.Equal(t, transport.StatePaused, c.Status().State)
			// Waiting for the resume that never comes ends with the
			// caller's context, not later.
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := c.WaitResume(ctx, "any")
			assert.Equal(t, agentwire.CodeDeadlineExceeded, agentwire.CodeOf(err))
			assert.Less(t, time.Since(start), 300*time.Millisecond)
			// The transport leaves the policy to its user (the pool); the
			// connection itself still works.
			served(t, c, nil)
		}},

		{name: "PauseFlood", script: func(c *testagent.PeerConn) {
			if c.Accept("victim") != nil {
				return
			}
			for i := range floodSize {
				id := fmt.Sprintf("flood-%d", i)
				if c.Send(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_FlowControl{FlowControl: &agentv2.FlowControlSignal{
					Action: agentv2.FlowAction_FLOW_ACTION_PAUSE, CorrelationId: &id}}}) != nil {
					return
				}
			}
			c.Serve()
		}, check: func(t *testing.T, c transport.Conn, dialErr error) {
			require.NoError(t, dialErr)
			// The pauses are processed in order; the call after them
			// proves they all were.
			served(t, c, nil)
			assert.True(t, c.Paused("flood-0"))
			assert.False(t, c.Paused(fmt.Sprintf("flood-%d", floodSize-1)), "per-request pauses are bounded; the last ones are dropped")
			assert.False(t, c.Paused("victim-1"))
		}},
	}
}

// TestProtocolFaults: a peer breaks the protocol on one connection while
// another connection to it carries traffic. Every fault has its defined
// outcome (ignored and counted, or the connection closed with a protocol
// error) within a bound, and the other connection never notices.
func TestProtocolFaults(t *testing.T) {
	t.Parallel()
	for _, tr := range []string{transport.TransportUnix, transport.TransportGRPC, transport.TransportConnect} {
		t.Run(tr, func(t *testing.T) {
			t.Parallel()
			for _, f := range faults(t) {
				if f.framedOnly && tr != transport.TransportUnix {
					continue
				}
				t.Run(f.name, func(t *testing.T) {
					t.Parallel()
					runFault(t, tr, f)
					if !t.Failed() {
						faultsSurvived.Add(1)
					}
				})
			}
		})
	}
}

func runFault(t *testing.T, tr string, f fault) {
	choose := func(first *agentv2.ProxyToAgent) testagent.Script {
		if first.GetHandshake().GetProxyId() == "victim" {
			return f.script
		}
		return func(c *testagent.PeerConn) {
			if c.Accept("control") == nil {
				c.Serve()
			}
		}
	}
	var (
		peer *testagent.Peer
		err  error
	)
	if tr == transport.TransportUnix {
		peer, err = testagent.ListenFramedPeer(filepath.Join(shortDir(t), "peer.sock"), choose)
	} else {
		// Connect dials the same grpc-go peer, with the gRPC protocol.
		peer, err = testagent.ListenGRPCPeer("127.0.0.1:0", choose)
	}
	require.NoError(t, err)
	defer peer.Close()
	endpoint := peer.Endpoint()
	if tr == transport.TransportConnect {
		endpoint = "http://" + strings.TrimPrefix(endpoint, "grpc://")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	control, err := transport.Dial(ctx, endpoint, transport.WithProxyID("control", "1"))
	require.NoError(t, err)
	defer control.Close(context.Background())

	// Traffic on the control connection for the whole fault.
	stop := make(chan struct{})
	var (
		wg          sync.WaitGroup
		controlErrs []error
		controlOK   int
	)
	firstCall := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			if i > 0 {
				select {
				case <-stop:
					return
				default:
				}
			}
			cctx, ccancel := context.WithTimeout(context.Background(), faultCallTimeout)
			_, err := control.Send(cctx, headersEvent(fmt.Sprintf("control-%d", i), "/"))
			ccancel()
			if err != nil {
				controlErrs = append(controlErrs, err)
			} else {
				controlOK++
			}
			if i == 0 {
				close(firstCall)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	// The other connection carries traffic before, during and after the
	// fault: at least one call completes before the fault starts.
	<-firstCall

	victim, dialErr := transport.Dial(ctx, endpoint, transport.WithProxyID("victim", "1"),
		transport.WithHandshakeTimeout(faultHandshake), transport.WithMaxFrameSize(faultMaxFrame),
		transport.WithCallTimeout(faultCallTimeout), transport.WithMaxPending(4<<10))
	if victim != nil {
		defer func() {
			cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer ccancel()
			assert.NoError(t, victim.Close(cctx), "closing the victim connection")
		}()
	}
	f.check(t, victim, dialErr)

	close(stop)
	wg.Wait()
	assert.Empty(t, controlErrs, "the other connection was affected")
	assert.NotZero(t, controlOK, "no traffic on the other connection")
	st := control.Status()
	assert.Equal(t, transport.StateReady, st.State)
	assert.Zero(t, st.UnknownResponses+st.UnknownFrames, "the other connection saw stray messages")
}
