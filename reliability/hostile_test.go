package reliability_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
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

// Hostile-client bounds.
const (
	hostileAttempts    = 1000
	hostileConcurrency = 50
	// hostileRegTimeout leaves the proxy time to read and answer every
	// fast client even when -race and other processes starve it (at
	// 200 ms the test failed once with three busy processes alongside).
	hostileRegTimeout = 500 * time.Millisecond
	hostileToken      = "reliability-token-7f3a"
	hostileCap        = 2
)

// hostileKind is one way a client tries to get in, and the code its
// rejection must carry. answered kinds get a registration answer saying
// why; the others (slow clients) are dropped at the registration timeout.
type hostileKind struct {
	name     string
	code     agentwire.Code
	answered bool
	// send writes what the client sends (nothing, for a silent client).
	send func(nc net.Conn, n int) error
}

func registration(reg *agentv2.RegistrationRequest) []byte {
	b, err := codec.AppendFrame(nil, &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Registration{Registration: reg}}, 0)
	if err != nil {
		panic(err)
	}
	return b
}

func sendReg(reg *agentv2.RegistrationRequest) func(net.Conn, int) error {
	return func(nc net.Conn, _ int) error {
		_, err := nc.Write(registration(reg))
		return err
	}
}

func hostileKinds() []hostileKind {
	valid := func(id, token string) *agentv2.RegistrationRequest {
		return &agentv2.RegistrationRequest{ProtocolVersion: 2, AgentId: id, AuthToken: token}
	}
	return []hostileKind{
		{"NoToken", agentwire.CodeUnauthenticated, true, sendReg(valid("waf-1", ""))},
		{"WrongToken", agentwire.CodeUnauthenticated, true, func(nc net.Conn, n int) error {
			return sendReg(valid("waf-1", fmt.Sprintf("guess-%d", n)))(nc, n)
		}},
		{"OtherAgentsToken", agentwire.CodeUnauthenticated, true, sendReg(valid("waf-2", hostileToken))},
		{"WrongVersion", agentwire.CodeFailedPrecondition, true, sendReg(&agentv2.RegistrationRequest{ProtocolVersion: 1, AgentId: "waf-1", AuthToken: hostileToken})},
		{"EmptyID", agentwire.CodeInvalidArgument, true, sendReg(valid("", hostileToken))},
		{"UnprintableID", agentwire.CodeInvalidArgument, true, sendReg(valid("waf-\x00\x1b[2J", hostileToken))},
		{"NotAllowlisted", agentwire.CodePermissionDenied, true, func(nc net.Conn, n int) error {
			return sendReg(valid(fmt.Sprintf("evil-%d", n), hostileToken))(nc, n)
		}},
		{"OverCap", agentwire.CodeResourceExhausted, true, sendReg(valid("waf-1", hostileToken))},
		{"NotARegistration", agentwire.CodeInvalidArgument, true, func(nc net.Conn, _ int) error {
			_, err := nc.Write(testagent.RawFrame(agentv2.AgentToProxyFrameHandshake, nil))
			return err
		}},
		{"HugeAnnouncement", agentwire.CodeInvalidArgument, true, func(nc net.Conn, _ int) error {
			var hdr [agentv2.FrameHeaderSize]byte
			binary.BigEndian.PutUint32(hdr[:], 64<<20)
			hdr[4] = byte(agentv2.AgentToProxyFrameRegistration)
			_, err := nc.Write(hdr[:])
			return err
		}},
		{"Silent", agentwire.CodeDeadlineExceeded, false, func(net.Conn, int) error { return nil }},
		{"OneByte", agentwire.CodeDeadlineExceeded, false, func(nc net.Conn, _ int) error {
			_, err := nc.Write([]byte{0})
			return err
		}},
		{"HalfAFrame", agentwire.CodeDeadlineExceeded, false, func(nc net.Conn, _ int) error {
			b := registration(valid("waf-1", hostileToken))
			_, err := nc.Write(b[:len(b)/2])
			return err
		}},
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// TestHostileReverseClients: 1000 clients per network (Unix socket and
// loopback TCP), 50 at a time, try to get a reverse connection admitted
// without a valid registration, or hold a registration slot open. None is
// admitted; each is rejected with its reason or dropped at the
// registration timeout, and the process's file descriptors return to
// their baseline. Not parallel: it counts the process's descriptors.
func TestHostileReverseClients(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		t.Run(network, func(t *testing.T) { hostileRun(t, network) })
	}
}

func hostileRun(t *testing.T, network string) {
	var (
		mu       sync.Mutex
		rejected = map[agentwire.Code]int{}
		admitted = make(chan transport.Conn, 16)
	)
	l, err := transport.NewReverseListener(
		transport.WithAgentToken("waf-1", hostileToken),
		transport.WithAgentToken("waf-2", "waf-2-own-token"),
		transport.WithAllowedAgents("waf-*"),
		transport.WithMaxConnsPerAgent(hostileCap),
		transport.WithRegistrationTimeout(hostileRegTimeout),
		transport.WithCloseConnsOnClose(),
		transport.WithConnOptions(transport.WithLogger(quietLogger)),
		transport.WithAdmitHandler(func(_ string, c transport.Conn, _ *agentv2.RegistrationRequest) { admitted <- c }),
		transport.WithRejectHandler(func(_ net.Addr, _ string, err error) {
			mu.Lock()
			rejected[agentwire.CodeOf(err)]++
			mu.Unlock()
		}),
	)
	require.NoError(t, err)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, l.Close(ctx))
	}()
	var addr string
	if network == "unix" {
		a, err := l.ListenUnix(filepath.Join(shortDir(t), "reverse.sock"))
		require.NoError(t, err)
		addr = a.String()
	} else {
		a, err := l.ListenTCP("127.0.0.1:0", nil)
		require.NoError(t, err)
		addr = a.String()
	}
	dial := func() (net.Conn, error) { return net.DialTimeout(network, addr, 5*time.Second) }

	// connect registers a well-behaved waf-1 and waits for its admission.
	connect := func() (net.Conn, transport.Conn) {
		nc, err := dial()
		require.NoError(t, err)
		t.Cleanup(func() { nc.Close() })
		_, err = nc.Write(registration(&agentv2.RegistrationRequest{ProtocolVersion: 2, AgentId: "waf-1", AuthToken: hostileToken}))
		require.NoError(t, err)
		r := codec.NewReader(nc, 0)
		var m agentv2.ProxyToAgent
		require.NoError(t, r.ReadProxyToAgent(&m))
		require.True(t, m.GetRegistrationResponse().GetAccepted(), "legitimate registration: %v", m.GetRegistrationResponse())
		require.NoError(t, r.ReadProxyToAgent(&m))
		require.NotNil(t, m.GetHandshake())
		require.NoError(t, codec.WriteFrameTo(nc, testagent.HandshakeResponse("waf-1"), 0))
		select {
		case c := <-admitted:
			return nc, c
		case <-time.After(5 * time.Second):
			t.Fatal("legitimate connection not admitted")
		}
		return nil, nil
	}
	// waf-1 holds its whole cap with two well-behaved connections.
	var legit []net.Conn
	for range hostileCap {
		nc, _ := connect()
		legit = append(legit, nc)
	}
	eventually(t, 2*time.Second, "pending registrations settle", func() bool { return l.Stats().Pending == 0 })
	baseline := openFDs(t)

	kinds := hostileKinds()
	want := map[agentwire.Code]int{}
	for i := range hostileAttempts {
		want[kinds[i%len(kinds)].code]++
	}
	start := time.Now()
	attempts := make(chan int)
	var (
		wg       sync.WaitGroup
		failures = make(chan string, hostileAttempts)
		dropMu   sync.Mutex
		drops    []time.Duration
	)
	for range hostileConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range attempts {
				k := kinds[n%len(kinds)]
				d, err := hostileAttempt(dial, k, n)
				if err != nil {
					failures <- fmt.Sprintf("%s #%d: %v", k.name, n, err)
				}
				if !k.answered {
					dropMu.Lock()
					drops = append(drops, d)
					dropMu.Unlock()
				}
			}
		}()
	}
	for n := range hostileAttempts {
		attempts <- n
	}
	close(attempts)
	wg.Wait()
	close(failures)
	elapsed := time.Since(start)
	for f := range failures {
		t.Error(f)
	}

	eventually(t, 5*time.Second, "every attempt reported", func() bool {
		return l.Stats().Rejected == hostileAttempts && l.Stats().Pending == 0
	})
	mu.Lock()
	assert.Equal(t, want, rejected, "rejections by code")
	mu.Unlock()
	st := l.Stats()
	assert.Equal(t, uint64(hostileCap), st.Admitted, "only the two legitimate connections were admitted")
	assert.Equal(t, hostileCap, st.Live)
	select {
	case <-admitted:
		t.Fatal("a hostile client was admitted")
	default:
	}
	var fds int
	eventually(t, 5*time.Second, "file descriptors back to the baseline", func() bool {
		fds = openFDs(t)
		return fds <= baseline
	})
	// The flood leaked no cap slot: when a legitimate connection goes, its
	// agent gets the slot back.
	legit[0].Close()
	eventually(t, 5*time.Second, "cap slot released", func() bool { return l.Stats().Live == hostileCap-1 })
	connect()
	hostileRejected.Add(hostileAttempts)
	figure(t, "hostile."+network, "%d attempts (%d kinds, %d at a time) in %v: 0 admitted, %d rejected, slow clients dropped after %s..%s (timeout %v), fds %d -> %d",
		hostileAttempts, len(kinds), hostileConcurrency, elapsed.Round(time.Millisecond), st.Rejected,
		ms(quantile(drops, 0)), ms(quantile(drops, 1)), hostileRegTimeout, baseline, fds)
}

// hostileAttempt makes one attempt of kind k and checks, from the
// client's side, that it was refused as it should be. It returns how long
// the proxy took to drop a client that got no answer.
func hostileAttempt(dial func() (net.Conn, error), k hostileKind, n int) (time.Duration, error) {
	nc, err := dial()
	if err != nil {
		return 0, fmt.Errorf("dial: %w", err)
	}
	defer nc.Close()
	start := time.Now()
	if err := k.send(nc, n); err != nil {
		return 0, fmt.Errorf("send: %w", err)
	}
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := codec.NewReader(nc, 0)
	var m agentv2.ProxyToAgent
	err = r.ReadProxyToAgent(&m)
	dropped := time.Since(start)
	if !k.answered {
		switch {
		case err == nil:
			return dropped, fmt.Errorf("got %v, want the connection dropped", m.FrameType())
		case errors.Is(err, os.ErrDeadlineExceeded):
			return dropped, errors.New("still open after 5 s")
		case dropped < hostileRegTimeout*9/10:
			return dropped, fmt.Errorf("dropped after %v, before the registration timeout", dropped)
		}
		return dropped, nil
	}
	if err != nil {
		return 0, fmt.Errorf("no registration answer: %w", err)
	}
	resp := m.GetRegistrationResponse()
	if resp == nil || resp.GetAccepted() {
		return 0, fmt.Errorf("answer %v, want a rejection", &m)
	}
	if !strings.HasPrefix(resp.GetError(), k.code.String()+": ") {
		return 0, fmt.Errorf("rejection %q, want code %v", resp.GetError(), k.code)
	}
	// And then the proxy hangs up.
	if _, err := io.ReadAll(nc); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, nil
	} else if err != nil {
		return 0, errors.New("connection left open after the rejection")
	}
	return 0, nil
}
