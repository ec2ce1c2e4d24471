package transport_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var errBadSignature = errors.New("bad signature")

// signedVerifier accepts "signed:good", denies "signed:deny" and rejects
// anything else, recording the peers it saw.
func signedVerifier(_ context.Context, reg *agentv2.RegistrationRequest, peer net.Addr) error {
	if peer == nil {
		return errors.New("no peer address")
	}
	switch reg.GetAuthToken() {
	case "signed:good":
		return nil
	case "signed:deny":
		return agentwire.Errorf(agentwire.CodePermissionDenied, "agent is banned")
	}
	return errBadSignature
}

func reg(id, token string) *agentv2.RegistrationRequest {
	return &agentv2.RegistrationRequest{ProtocolVersion: 2, AgentId: id, AuthToken: token}
}

// registrationListenerOpts: waf-1 has a token of its own, everyone else
// shares the global one; only waf-* and auth may register.
func registrationListenerOpts(extra ...transport.ReverseOption) []transport.ReverseOption {
	return append([]transport.ReverseOption{
		transport.WithAgentToken("waf-1", "waf-1-secret"),
		transport.WithGlobalToken("global-secret"),
		transport.WithAllowedAgents("waf-*", "auth"),
		transport.WithRegistrationTimeout(300 * time.Millisecond),
		transport.WithConnOptions(transport.WithHandshakeTimeout(2 * time.Second)),
	}, extra...)
}

// TestReverseRegistrationRejected runs every refusal over both networks;
// nothing may be admitted and no file descriptor may stay open. It is not
// parallel with other tests, so that the descriptor count means something;
// its cases run in parallel with each other.
func TestReverseRegistrationRejected(t *testing.T) {
	verifier := transport.WithTokenVerifier(signedVerifier)
	cases := []struct {
		name string
		opts []transport.ReverseOption
		// send is what the client does; it sends nothing for silent clients.
		send func(t *testing.T, a *rawAgent)
		code agentwire.Code
		// reason is in the answer; empty means the connection is dropped
		// without one.
		reason string
	}{
		{name: "BadVersion", send: func(t *testing.T, a *rawAgent) {
			r := reg("waf-1", "waf-1-secret")
			r.ProtocolVersion = 1
			a.register(t, r)
		}, code: agentwire.CodeFailedPrecondition, reason: "protocol version 1"},
		{name: "EmptyID", send: func(t *testing.T, a *rawAgent) { a.register(t, reg("", "global-secret")) },
			code: agentwire.CodeInvalidArgument, reason: "empty agent id"},
		{name: "ControlCharsInID", send: func(t *testing.T, a *rawAgent) { a.register(t, reg("waf-\n1", "global-secret")) },
			code: agentwire.CodeInvalidArgument, reason: "printable"},
		{name: "NotAllowlisted", send: func(t *testing.T, a *rawAgent) { a.register(t, reg("db-1", "global-secret")) },
			code: agentwire.CodePermissionDenied, reason: "not allowed"},
		{name: "WildcardNonMatchPrefix", send: func(t *testing.T, a *rawAgent) { a.register(t, reg("xwaf-1", "global-secret")) },
			code: agentwire.CodePermissionDenied, reason: "not allowed"},
		{name: "WildcardNonMatchSlash", send: func(t *testing.T, a *rawAgent) { a.register(t, reg("waf-/1", "global-secret")) },
			code: agentwire.CodePermissionDenied, reason: "not allowed"},
		{name: "ExactNonMatch", send: func(t *testing.T, a *rawAgent) { a.register(t, reg("auth2", "global-secret")) },
			code: agentwire.CodePermissionDenied, reason: "not allowed"},
		{name: "MissingToken", send: func(t *testing.T, a *rawAgent) { a.register(t, reg("waf-2", "")) },
			code: agentwire.CodeUnauthenticated, reason: "token required"},
		{name: "WrongToken", send: func(t *testing.T, a *rawAgent) { a.register(t, reg("waf-2", "global-secreT")) },
			code: agentwire.CodeUnauthenticated, reason: "invalid auth token"},
		{name: "PrefixOfToken", send: func(t *testing.T, a *rawAgent) { a.register(t, reg("waf-2", "global")) },
			code: agentwire.CodeUnauthenticated, reason: "invalid auth token"},
		{name: "OtherAgentsToken", send: func(t *testing.T, a *rawAgent) { a.register(t, reg("waf-2", "waf-1-secret")) },
			code: agentwire.CodeUnauthenticated, reason: "invalid auth token"},
		{name: "GlobalTokenForAgentWithOwn", send: func(t *testing.T, a *rawAgent) { a.register(t, reg("waf-1", "global-secret")) },
			code: agentwire.CodeUnauthenticated, reason: "invalid auth token"},
		{name: "VerifierRejects", opts: []transport.ReverseOption{verifier},
			send: func(t *testing.T, a *rawAgent) { a.register(t, reg("waf-3", "signed:forged")) },
			code: agentwire.CodeUnauthenticated, reason: "auth token rejected"},
		{name: "VerifierDenies", opts: []transport.ReverseOption{verifier},
			send: func(t *testing.T, a *rawAgent) { a.register(t, reg("waf-3", "signed:deny")) },
			code: agentwire.CodePermissionDenied, reason: "auth token rejected"},
		{name: "VersionCheckedBeforeAuth", send: func(t *testing.T, a *rawAgent) {
			r := reg("db-1", "")
			r.ProtocolVersion = 3
			a.register(t, r)
		}, code: agentwire.CodeFailedPrecondition, reason: "protocol version 3"},
		{name: "AllowlistCheckedBeforeAuth", send: func(t *testing.T, a *rawAgent) { a.register(t, reg("db-1", "")) },
			code: agentwire.CodePermissionDenied, reason: "not allowed"},
		{name: "HandshakeInsteadOfRegistration", send: func(t *testing.T, a *rawAgent) {
			hs := &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{Handshake: &agentv2.HandshakeResponse{Success: true}}}
			b, err := hs.AppendFrame(nil, 0)
			require.NoError(t, err)
			_, err = a.nc.Write(b)
			require.NoError(t, err)
		}, code: agentwire.CodeInvalidArgument, reason: "first frame must be a registration"},
		{name: "OversizeFrame", send: func(t *testing.T, a *rawAgent) {
			var hdr [5]byte
			binary.BigEndian.PutUint32(hdr[:], 1<<20)
			hdr[4] = byte(agentv2.AgentToProxyFrameRegistration)
			_, err := a.nc.Write(hdr[:])
			require.NoError(t, err)
		}, code: agentwire.CodeInvalidArgument, reason: "exceeds"},
		{name: "MalformedPayload", send: func(t *testing.T, a *rawAgent) {
			frame := []byte{0, 0, 0, 3, byte(agentv2.AgentToProxyFrameRegistration), 0xff, 0xff}
			_, err := a.nc.Write(frame)
			require.NoError(t, err)
		}, code: agentwire.CodeInvalidArgument, reason: "malformed registration"},
		{name: "Silent", send: func(*testing.T, *rawAgent) {}, code: agentwire.CodeDeadlineExceeded},
		{name: "OneByteThenStall", send: func(t *testing.T, a *rawAgent) {
			_, err := a.nc.Write([]byte{0})
			require.NoError(t, err)
		}, code: agentwire.CodeDeadlineExceeded},
		{name: "HeaderThenStall", send: func(t *testing.T, a *rawAgent) {
			_, err := a.nc.Write([]byte{0, 0, 0, 9, byte(agentv2.AgentToProxyFrameRegistration), 1})
			require.NoError(t, err)
		}, code: agentwire.CodeDeadlineExceeded},
		{name: "HangUpMidFrame", send: func(t *testing.T, a *rawAgent) {
			_, err := a.nc.Write([]byte{0, 0, 0})
			require.NoError(t, err)
			a.nc.(interface{ CloseWrite() error }).CloseWrite()
		}, code: agentwire.CodeUnavailable},
	}

	// Let the runtime set up its poller and the like before counting.
	warm := startReverse(t, "tcp", registrationListenerOpts()...)
	dialRaw(t, warm).nc.Close()
	warm.nextRejected(t)
	baseline := openFDs(t)

	t.Run("group", func(t *testing.T) {
		for _, network := range []string{"unix", "tcp"} {
			for _, tc := range cases {
				t.Run(network+"/"+tc.name, func(t *testing.T) {
					t.Parallel()
					rl := startReverse(t, network, registrationListenerOpts(tc.opts...)...)
					a := dialRaw(t, rl)
					start := time.Now()
					tc.send(t, a)
					if tc.reason != "" {
						resp := a.answer(t)
						assert.False(t, resp.GetAccepted())
						assert.Empty(t, resp.GetConnectionId())
						assert.True(t, strings.HasPrefix(resp.GetError(), tc.code.String()+": "), "answer %q", resp.GetError())
						assert.Contains(t, resp.GetError(), tc.reason)
						assert.NotContains(t, resp.GetError(), "secret")
						assert.NotContains(t, resp.GetError(), errBadSignature.Error(), "verifier details stay on the proxy")
					}
					a.closedWithin(t, 2*time.Second)
					if tc.code == agentwire.CodeDeadlineExceeded {
						assert.GreaterOrEqual(t, time.Since(start), 250*time.Millisecond, "dropped before the timeout")
					}
					r := rl.nextRejected(t)
					assert.Equal(t, tc.code, agentwire.CodeOf(r.err), "%v", r.err)
					var ae *agentwire.Error
					assert.ErrorAs(t, r.err, &ae)
					assert.NotNil(t, r.peer)
					if tc.name == "VerifierRejects" {
						assert.ErrorIs(t, r.err, errBadSignature)
					}
					st := rl.Stats()
					assert.Zero(t, st.Admitted)
					assert.Equal(t, uint64(1), st.Rejected)
					assert.Empty(t, rl.admitted)
				})
			}
		}
	})
	require.Eventually(t, func() bool { return openFDs(t) <= baseline }, 5*time.Second, 10*time.Millisecond,
		"file descriptors: %d open, %d before", openFDs(t), baseline)
}

func TestReverseRegistrationAccepted(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			var (
				mu    sync.Mutex
				peers []net.Addr
			)
			rl := startReverse(t, network, registrationListenerOpts(
				transport.WithTokenVerifier(func(ctx context.Context, r *agentv2.RegistrationRequest, peer net.Addr) error {
					mu.Lock()
					peers = append(peers, peer)
					mu.Unlock()
					return signedVerifier(ctx, r, peer)
				}),
				transport.WithRegistrationConfig(func(r *agentv2.RegistrationRequest) string {
					return `{"for":"` + r.GetAgentId() + `"}`
				}),
				transport.WithConnOptions(transport.WithProxyID("proxy-7", "9.9.9")),
			)...)
			cases := []struct{ id, token string }{
				{"waf-1", "waf-1-secret"},     // own token
				{"waf-eu-2", "global-secret"}, // wildcard match, global token
				{"auth", "global-secret"},     // exact allowlist entry
				{"waf-9", "signed:good"},      // verifier
			}
			ids := map[string]bool{}
			for _, c := range cases {
				a := dialRaw(t, rl)
				r := reg(c.id, c.token)
				r.Metadata = map[string]string{"zone": "eu"}
				r.Capabilities = &agentv2.AgentCapabilities{AgentId: c.id, Name: "raw"}
				a.register(t, r)
				resp := a.answer(t)
				require.True(t, resp.GetAccepted(), "%s: %s", c.id, resp.GetError())
				assert.Equal(t, "proxy-7", resp.GetProxyId())
				assert.Equal(t, "9.9.9", resp.GetProxyVersion())
				assert.Equal(t, `{"for":"`+c.id+`"}`, resp.GetConfigJson())
				assert.Regexp(t, regexp.MustCompile(`^[0-9a-f]{32}$`), resp.GetConnectionId())
				assert.False(t, ids[resp.GetConnectionId()], "connection id reused")
				ids[resp.GetConnectionId()] = true
				a.handshake(t, c.id)
				got := rl.nextAdmitted(t)
				assert.Equal(t, c.id, got.id)
				assert.Equal(t, "eu", got.reg.GetMetadata()["zone"])
				assert.Equal(t, "raw", got.reg.GetCapabilities().GetName())
				assert.Equal(t, c.id, got.c.Capabilities().GetAgentId())
				assert.Equal(t, transport.StateReady, got.c.Status().State)
			}
			st := rl.Stats()
			assert.Equal(t, uint64(len(cases)), st.Admitted)
			assert.Zero(t, st.Rejected)
			assert.Equal(t, len(cases), st.Live)
			mu.Lock()
			assert.Len(t, peers, 1, "the verifier is asked only when no token matches")
			mu.Unlock()
		})
	}
}

// TestReverseConnCap: the cap counts live connections, is checked after
// authentication, and frees a slot when a connection ends.
func TestReverseConnCap(t *testing.T) {
	t.Parallel()
	rl := startReverse(t, "tcp", transport.WithGlobalToken("t"), transport.WithMaxConnsPerAgent(2))
	admit := func() admittedConn {
		a := dialRaw(t, rl)
		a.register(t, reg("capped", "t"))
		require.True(t, a.answer(t).GetAccepted())
		a.handshake(t, "capped")
		return rl.nextAdmitted(t)
	}
	first := admit()
	admit()
	assert.Equal(t, 2, rl.Stats().Live)

	over := dialRaw(t, rl)
	over.register(t, reg("capped", "t"))
	resp := over.answer(t)
	assert.False(t, resp.GetAccepted())
	assert.Contains(t, resp.GetError(), "resource_exhausted: ")
	over.closedWithin(t, 2*time.Second)
	assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(rl.nextRejected(t).err))

	// A bad token is refused as such even when the agent is at its cap.
	bad := dialRaw(t, rl)
	bad.register(t, reg("capped", "x"))
	assert.Contains(t, bad.answer(t).GetError(), "unauthenticated: ")
	rl.nextRejected(t)

	// Other agents have caps of their own.
	other := dialRaw(t, rl)
	other.register(t, reg("other", "t"))
	assert.True(t, other.answer(t).GetAccepted())
	other.handshake(t, "other")
	rl.nextAdmitted(t)

	require.NoError(t, first.c.Close(context.Background()))
	require.Eventually(t, func() bool { return rl.Stats().Live == 2 }, 5*time.Second, 5*time.Millisecond)
	admit()
}

// TestReverseCapCountsHandshakes: registrations racing for the last slot
// cannot both get it.
func TestReverseCapCountsHandshakes(t *testing.T) {
	t.Parallel()
	rl := startReverse(t, "tcp", transport.WithGlobalToken("t"), transport.WithMaxConnsPerAgent(3))
	const n = 12
	var wg sync.WaitGroup
	var accepted sync.Map
	for i := range n {
		a := dialRaw(t, rl)
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Registration{Registration: reg("racer", "t")}}
			b, _ := msg.AppendFrame(nil, 0)
			if _, err := a.nc.Write(b); err != nil {
				return
			}
			var m agentv2.ProxyToAgent
			_ = a.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if a.r.ReadProxyToAgent(&m) == nil && m.GetRegistrationResponse().GetAccepted() {
				accepted.Store(i, a)
			}
		}()
	}
	wg.Wait()
	count := 0
	accepted.Range(func(_, v any) bool {
		count++
		v.(*rawAgent).handshake(t, "racer")
		return true
	})
	assert.Equal(t, 3, count)
	for range count {
		rl.nextAdmitted(t)
	}
	for range n - count {
		assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(rl.nextRejected(t).err))
	}
}

// TestReverseSlowClientsDoNotBlock: silent clients hold registration
// slots, not the accept loop; past the pending bound new connections are
// refused at once.
func TestReverseSlowClientsDoNotBlock(t *testing.T) {
	t.Parallel()
	t.Run("AcceptGoesOn", func(t *testing.T) {
		t.Parallel()
		rl := startReverse(t, "tcp", transport.WithGlobalToken("t"), transport.WithRegistrationTimeout(3*time.Second))
		for range 20 {
			dialRaw(t, rl)
		}
		require.Eventually(t, func() bool { return rl.Stats().Pending == 20 }, 5*time.Second, 5*time.Millisecond)
		start := time.Now()
		a := dialRaw(t, rl)
		a.register(t, reg("fast", "t"))
		require.True(t, a.answer(t).GetAccepted())
		a.handshake(t, "fast")
		rl.nextAdmitted(t)
		assert.Less(t, time.Since(start), time.Second)
	})
	t.Run("PendingBound", func(t *testing.T) {
		t.Parallel()
		rl := startReverse(t, "tcp", transport.WithGlobalToken("t"),
			transport.WithRegistrationTimeout(3*time.Second), transport.WithMaxPendingRegistrations(2))
		dialRaw(t, rl)
		dialRaw(t, rl)
		require.Eventually(t, func() bool { return rl.Stats().Pending == 2 }, 5*time.Second, 5*time.Millisecond)
		third := dialRaw(t, rl)
		third.closedWithin(t, time.Second)
		assert.Equal(t, agentwire.CodeResourceExhausted, agentwire.CodeOf(rl.nextRejected(t).err))
	})
}

func TestReverseListenerOptions(t *testing.T) {
	t.Parallel()
	admit := transport.WithAdmitHandler(func(string, transport.Conn, *agentv2.RegistrationRequest) {})
	for name, opts := range map[string][]transport.ReverseOption{
		"NoAdmitHandler": {transport.WithGlobalToken("t")},
		"NoAuth":         {admit},
		"BadPattern":     {admit, transport.WithGlobalToken("t"), transport.WithAllowedAgents("waf-[")},
		"ZeroTimeout":    {admit, transport.WithGlobalToken("t"), transport.WithRegistrationTimeout(0)},
		"ZeroCap":        {admit, transport.WithGlobalToken("t"), transport.WithMaxConnsPerAgent(0)},
	} {
		_, err := transport.NewReverseListener(opts...)
		assert.Equal(t, agentwire.CodeInvalidArgument, agentwire.CodeOf(err), "%s: %v", name, err)
	}
	l, err := transport.NewReverseListener(admit, transport.WithoutAuth())
	require.NoError(t, err)
	require.NoError(t, l.Close(context.Background()))
}

// TestReverseWithoutAuth: with WithoutAuth, tokens are not required, but
// the other checks still apply.
func TestReverseWithoutAuth(t *testing.T) {
	t.Parallel()
	rl := startReverse(t, "unix", transport.WithoutAuth(), transport.WithAllowedAgents("ok-?"))
	a := dialRaw(t, rl)
	a.register(t, reg("ok-1", ""))
	require.True(t, a.answer(t).GetAccepted())
	b := dialRaw(t, rl)
	b.register(t, reg("ok-12", ""))
	assert.Contains(t, b.answer(t).GetError(), "permission_denied")
}

// BenchmarkReverseRegistration measures one agent connection from dial to
// an admitted, handshaken Conn (registration, token check, handshake).
func BenchmarkReverseRegistration(b *testing.B) {
	for _, network := range []string{"unix", "tcp"} {
		b.Run(network, func(b *testing.B) {
			admitted := make(chan transport.Conn, 1)
			l, err := transport.NewReverseListener(transport.WithGlobalToken("bench-token"),
				transport.WithAdmitHandler(func(_ string, c transport.Conn, _ *agentv2.RegistrationRequest) { admitted <- c }))
			require.NoError(b, err)
			defer l.Close(context.Background())
			var addr string
			if network == "unix" {
				dir, err := os.MkdirTemp("", "aw")
				require.NoError(b, err)
				defer os.RemoveAll(dir)
				a, err := l.ListenUnix(dir + "/b.sock")
				require.NoError(b, err)
				addr = a.String()
			} else {
				a, err := l.ListenTCP("127.0.0.1:0", nil)
				require.NoError(b, err)
				addr = a.String()
			}
			regFrame, err := (&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Registration{
				Registration: reg("bench", "bench-token")}}).AppendFrame(nil, 0)
			require.NoError(b, err)
			hsFrame, err := (&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{Handshake: &agentv2.HandshakeResponse{
				ProtocolVersion: 2, Success: true, Capabilities: &agentv2.AgentCapabilities{AgentId: "bench"},
			}}}).AppendFrame(nil, 0)
			require.NoError(b, err)
			b.ResetTimer()
			for b.Loop() {
				nc, err := net.Dial(network, addr)
				require.NoError(b, err)
				r := codec.NewReader(nc, 0)
				_, err = nc.Write(regFrame)
				require.NoError(b, err)
				var m agentv2.ProxyToAgent
				require.NoError(b, r.ReadProxyToAgent(&m)) // registration answer
				require.True(b, m.GetRegistrationResponse().GetAccepted())
				require.NoError(b, r.ReadProxyToAgent(&m)) // handshake
				_, err = nc.Write(hsFrame)
				require.NoError(b, err)
				c := <-admitted
				b.StopTimer()
				require.NoError(b, c.Close(context.Background()))
				nc.Close()
				b.StartTimer()
			}
		})
	}
}

// TestReverseConnOptionsPerAgent: options chosen per registered agent reach
// that agent's connection (here a health handler that knows the agent id),
// after the listener-wide ones.
func TestReverseConnOptionsPerAgent(t *testing.T) {
	t.Parallel()
	got := make(chan string, 4)
	rl := startReverse(t, "unix",
		transport.WithGlobalToken(reverseToken),
		transport.WithConnOptionsFunc(func(agentID string, reg *agentv2.RegistrationRequest) []transport.Option {
			return []transport.Option{transport.WithHealthHandler(func(h *agentv2.HealthStatus) {
				got <- agentID + "/" + reg.GetMetadata()["zone"] + "/" + h.GetState().String()
			})}
		}))
	a := dialRaw(t, rl)
	r := reg("edge-7", reverseToken)
	r.Metadata = map[string]string{"zone": "eu"}
	a.register(t, r)
	require.True(t, a.answer(t).GetAccepted())
	a.handshake(t, "edge-7")
	rl.nextAdmitted(t)
	health := &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Health{Health: &agentv2.HealthStatus{
		AgentId: "edge-7", State: agentv2.HealthState_HEALTH_STATE_DEGRADED}}}
	require.NoError(t, codec.WriteFrameTo(a.nc, health, 0))
	select {
	case s := <-got:
		require.Equal(t, "edge-7/eu/HEALTH_STATE_DEGRADED", s)
	case <-time.After(5 * time.Second):
		t.Fatal("the per-agent health handler was not called")
	}
}
