package reliability_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/transport"
)

// The fuzz targets feed arbitrary bytes to the three places where a peer
// speaks before anything about it is known: the agent's handshake
// handling, the proxy's, and the reverse listener's registration. Each
// runs over a real socket pair, must end (no hang) and must decide as a
// small reference model of the protocol says.

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpora in testdata/fuzz")

// fuzzBound is how long one input may take before it counts as a hang.
const fuzzBound = 5 * time.Second

// socketPair returns the two ends of a connected Unix stream socket pair.
func socketPair(t testing.TB) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// feed writes data to c and half-closes it, on its own goroutine (the
// peer may stop reading); the returned channel is closed when it is done.
func feed(c *net.UnixConn, data []byte) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = c.Write(data)
		_ = c.CloseWrite()
	}()
	return done
}

// readAll reads c to its end, failing the input if that takes too long.
func readAll(t *testing.T, c net.Conn) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(fuzzBound))
	out, err := io.ReadAll(c)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the peer kept the connection open for %v", fuzzBound)
	}
	return out
}

// firstFrame is the reference model of framing: it decodes the first frame
// of b into m (skipping frames of unknown types if skipUnknown) and
// returns the bytes after it, or the codec error a reader would report.
func firstFrame(b []byte, m interface {
	Reset()
	UnmarshalFrame(agentv2.FrameType, []byte) error
	UnmarshalFrameUnsafe(agentv2.FrameType, []byte) error
}, known func(agentv2.FrameType) bool, max int, skipUnknown bool) ([]byte, error) {
	if max <= 0 {
		max = codec.DefaultMaxFrameSize
	}
	for {
		if len(b) < 4 {
			return nil, codec.ErrTruncated
		}
		n := int(binary.BigEndian.Uint32(b))
		switch {
		case n == 0:
			return nil, codec.ErrZeroLength
		case n > max:
			return nil, codec.ErrFrameTooLarge
		case len(b) < 4+n:
			return nil, codec.ErrTruncated
		}
		t, payload, rest := agentv2.FrameType(b[4]), b[agentv2.FrameHeaderSize:4+n], b[4+n:]
		err := codec.Decode(m, t, payload, known, false)
		if skipUnknown && errors.Is(err, codec.ErrUnknownFrameType) {
			b = rest
			continue
		}
		return rest, err
	}
}

// --- agent side -------------------------------------------------------

// FuzzAgentHandshake: arbitrary bytes as the proxy's opening. The agent
// answers a valid handshake (and only then sends anything), accepting it
// exactly when it offers version 2 and protobuf, and ends the connection
// when the bytes run out.
func FuzzAgentHandshake(f *testing.F) {
	srv, err := agent.NewServer(agent.Base{}, agent.WithLogger(quietLogger), agent.WithHandshakeTimeout(fuzzBound))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(srv.Close)
	f.Fuzz(func(t *testing.T, data []byte) {
		proxy, agentEnd := socketPair(t)
		defer proxy.Close()
		served := make(chan error, 1)
		go func() { served <- srv.ServeConn(context.Background(), agentEnd) }()
		fed := feed(proxy, data)
		out := readAll(t, proxy)
		select {
		case <-served:
		case <-time.After(fuzzBound):
			t.Fatal("the agent's session did not end")
		}
		<-fed

		var first agentv2.ProxyToAgent
		_, ferr := firstFrame(data, &first, agentv2.IsProxyToAgentFrame, 0, false)
		hs := first.GetHandshake()
		if ferr != nil || hs == nil {
			if len(out) != 0 {
				t.Fatalf("the agent sent %d bytes to a proxy that did not handshake (%v)", len(out), ferr)
			}
			return
		}
		var resp agentv2.AgentToProxy
		if _, err := firstFrame(out, &resp, agentv2.IsAgentToProxyFrame, 0, false); err != nil || resp.GetHandshake() == nil {
			t.Fatalf("the agent's first frame is not a handshake response (%v): %d bytes", err, len(out))
		}
		want := slices.Contains(hs.GetSupportedVersions(), agent.ProtocolVersion) &&
			(len(hs.GetSupportedEncodings()) == 0 || slices.Contains(hs.GetSupportedEncodings(), "protobuf"))
		if got := resp.GetHandshake().GetSuccess(); got != want {
			t.Fatalf("handshake success %v, want %v, for versions %v encodings %q", got, want, hs.GetSupportedVersions(), hs.GetSupportedEncodings())
		}
	})
}

func proxyFrame(m *agentv2.ProxyToAgent) []byte {
	b, err := codec.AppendFrame(nil, m, 0)
	if err != nil {
		panic(err)
	}
	return b
}

func agentFrame(m *agentv2.AgentToProxy) []byte {
	b, err := codec.AppendFrame(nil, m, 0)
	if err != nil {
		panic(err)
	}
	return b
}

func proxyHandshake(versions []uint32, encodings ...string) []byte {
	return proxyFrame(&agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Handshake{Handshake: &agentv2.HandshakeRequest{
		SupportedVersions: versions, ProxyId: "fuzz", SupportedEncodings: encodings, HealthReportIntervalMs: 1000,
	}}})
}

func agentHandshakeSeeds() [][]byte {
	good := proxyHandshake([]uint32{2}, "protobuf")
	ev := proxyFrame(headersEvent("c1", "/admin"))
	ping := proxyFrame(&agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{Sequence: 1}}})
	mismatch := bytes.Clone(good)
	mismatch[4] = byte(agentv2.ProxyToAgentFrameRequestHeaders)
	return [][]byte{
		good,
		append(slices.Clone(good), append(ev, ping...)...),
		proxyHandshake([]uint32{1}, "protobuf"),
		proxyHandshake([]uint32{2}, "json"),
		proxyHandshake([]uint32{2}),
		append(slices.Clone(good), good...), // a second handshake
		ev,                                  // an event first
		mismatch,
		testagent.RawFrame(0x7f, []byte("future")),
		good[:len(good)/2],
		{0, 0, 0, 0},
		{0x40, 0, 0, 0, 1},
		{},
	}
}

// --- proxy side -------------------------------------------------------

// FuzzProxyHandshake: arbitrary bytes as the agent's answer to the
// proxy's handshake. The proxy returns a connection exactly when the first
// frame of a known type is a successful protocol-2 protobuf handshake
// response, and otherwise a typed error, within the bound.
func FuzzProxyHandshake(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		proxyEnd, agentEnd := socketPair(t)
		defer agentEnd.Close()
		// The agent: check the proxy's handshake, answer with data, then
		// read whatever else comes until the proxy hangs up.
		agentDone := make(chan error, 1)
		go func() {
			var hs agentv2.ProxyToAgent
			err := codec.NewReader(agentEnd, 0).ReadProxyToAgent(&hs)
			if err == nil && !slices.Contains(hs.GetHandshake().GetSupportedVersions(), transport.ProtocolVersion) {
				err = fmt.Errorf("the proxy opened with %v", hs.FrameType())
			}
			<-feed(agentEnd, data)
			_, _ = io.Copy(io.Discard, agentEnd)
			agentDone <- err
		}()
		start := time.Now()
		c, err := transport.NewFramedConn(context.Background(), proxyEnd, "fuzz",
			transport.WithHandshakeTimeout(fuzzBound), transport.WithLogger(quietLogger))
		took := time.Since(start)
		if c != nil {
			_ = c.Close(context.Background())
		} else {
			_ = proxyEnd.Close()
		}
		select {
		case aerr := <-agentDone:
			if aerr != nil {
				t.Fatal(aerr)
			}
		case <-time.After(fuzzBound):
			t.Fatal("the proxy did not hang up")
		}

		var first agentv2.AgentToProxy
		_, ferr := firstFrame(data, &first, agentv2.IsAgentToProxyFrame, 0, true)
		hs := first.GetHandshake()
		want := ferr == nil && hs != nil && hs.GetSuccess() && hs.GetProtocolVersion() == transport.ProtocolVersion &&
			(hs.GetEncoding() == "" || hs.GetEncoding() == "protobuf")
		if want != (err == nil) {
			t.Fatalf("connected %v (err %v), want %v: first frame %v (%v)", err == nil, err, want, first.FrameType(), ferr)
		}
		if err != nil {
			var e *agentwire.Error
			if !errors.As(err, &e) {
				t.Fatalf("untyped error %T: %v", err, err)
			}
			switch e.Code() {
			case agentwire.CodeUnavailable, agentwire.CodeInternal, agentwire.CodeFailedPrecondition:
			default:
				t.Fatalf("handshake failed with code %v after %v: %v", e.Code(), took, err)
			}
		}
	})
}

func proxyHandshakeSeeds() [][]byte {
	ok := agentFrame(testagent.HandshakeResponse("fuzz"))
	msg := "not today"
	rejected := agentFrame(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{Handshake: &agentv2.HandshakeResponse{
		ProtocolVersion: 2, Success: false, Error: &msg}}})
	v3 := testagent.HandshakeResponse("fuzz")
	v3.GetHandshake().ProtocolVersion = 3
	json := testagent.HandshakeResponse("fuzz")
	json.GetHandshake().Encoding = "json"
	health := agentFrame(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Health{Health: &agentv2.HealthStatus{AgentId: "fuzz"}}})
	resp := agentFrame(&agentv2.AgentToProxy{EventId: 1, Message: &agentv2.AgentToProxy_Response{Response: &agentv2.AgentResponse{CorrelationId: "c"}}})
	return [][]byte{
		ok,
		append(slices.Clone(ok), append(health, resp...)...),
		append(slices.Clone(ok), ok...), // a second handshake after the first
		append(testagent.RawFrame(0x7f, []byte("future")), ok...),
		rejected,
		agentFrame(v3),
		agentFrame(json),
		health,
		ok[:len(ok)-3],
		{0, 0, 0, 0},
		{0x40, 0, 0, 0, 2},
		{},
	}
}

// --- reverse listener -------------------------------------------------

const (
	fuzzAgent = "waf-1"
	fuzzToken = "fuzz-token"
)

// chanListener is a net.Listener fed by the test.
type chanListener struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.UnixAddr{Name: "fuzz", Net: "unix"} }

type regOutcome struct {
	admitted bool
	id       string
	reg      *agentv2.RegistrationRequest
	err      error
}

// FuzzReverseRegistration: arbitrary bytes from a client of the reverse
// listener. Only waf-1 with its token and protocol 2 (followed by a valid
// handshake answer) is ever admitted; every connection gets exactly one
// outcome within the bound; a refusal the client is told about carries
// the code the listener reports.
func FuzzReverseRegistration(f *testing.F) {
	outcomes := make(chan regOutcome, 16)
	l, err := transport.NewReverseListener(
		transport.WithAgentToken(fuzzAgent, fuzzToken),
		transport.WithAllowedAgents("waf-*"),
		transport.WithMaxConnsPerAgent(1<<20),
		transport.WithRegistrationTimeout(fuzzBound),
		transport.WithConnOptions(transport.WithHandshakeTimeout(fuzzBound), transport.WithLogger(quietLogger)),
		transport.WithAdmitHandler(func(id string, c transport.Conn, reg *agentv2.RegistrationRequest) {
			_ = c.Close(context.Background())
			outcomes <- regOutcome{admitted: true, id: id, reg: reg}
		}),
		transport.WithRejectHandler(func(_ net.Addr, id string, err error) {
			outcomes <- regOutcome{id: id, err: err}
		}),
	)
	if err != nil {
		f.Fatal(err)
	}
	ln := &chanListener{ch: make(chan net.Conn), closed: make(chan struct{})}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = l.Serve(context.Background(), ln)
	}()
	f.Cleanup(func() {
		_ = l.Close(context.Background())
		<-served
	})

	f.Fuzz(func(t *testing.T, data []byte) {
		client, proxyEnd := socketPair(t)
		defer client.Close()
		select {
		case ln.ch <- proxyEnd:
		case <-time.After(fuzzBound):
			t.Fatal("the listener does not accept")
		}
		fed := feed(client, data)
		out := readAll(t, client)
		<-fed
		var o regOutcome
		select {
		case o = <-outcomes:
		case <-time.After(fuzzBound):
			t.Fatal("no outcome")
		}
		select {
		case extra := <-outcomes:
			t.Fatalf("a second outcome: %+v", extra)
		default:
		}

		// A reference registration (0x01, JSON) is answered the reference's
		// way (0x02, JSON); ours (0x50) with a protobuf frame.
		ref := len(data) > 4 && data[4] == 0x01
		var first agentv2.AgentToProxy
		var reg *agentv2.RegistrationRequest
		var ferr error
		if ref {
			reg, ferr = refRegistration(data)
		} else {
			_, ferr = firstFrame(data, &first, agentv2.IsAgentToProxyFrame, transport.MaxRegistrationFrame, false)
			reg = first.GetRegistration()
		}
		valid := ferr == nil && reg != nil && reg.GetProtocolVersion() == transport.ProtocolVersion &&
			reg.GetAgentId() == fuzzAgent && reg.GetAuthToken() == fuzzToken
		if o.admitted && !valid {
			t.Fatalf("admitted %q with registration %v (%v)", o.id, reg, ferr)
		}

		// What the client was told.
		if len(out) == 0 {
			if valid {
				t.Fatal("a valid registration got no answer")
			}
			return
		}
		rr, err := registrationAnswer(out, ref)
		if err != nil {
			t.Fatalf("the listener's first frame is not a registration answer (reference: %v): %v", ref, err)
		}
		if rr.GetAccepted() != valid {
			t.Fatalf("accepted %v, want %v, for %v (%v)", rr.GetAccepted(), valid, reg, ferr)
		}
		if !rr.GetAccepted() {
			if o.admitted {
				t.Fatal("admitted after telling the client it was refused")
			}
			code := agentwire.CodeOf(o.err)
			if !strings.HasPrefix(rr.GetError(), code.String()+": ") {
				t.Fatalf("the client was told %q, the listener reported %v", rr.GetError(), o.err)
			}
		}
	})
}

func registrationSeeds() [][]byte {
	reg := func(v uint32, id, token string) []byte {
		return agentFrame(&agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Registration{Registration: &agentv2.RegistrationRequest{
			ProtocolVersion: v, AgentId: id, AuthToken: token, Capabilities: &agentv2.AgentCapabilities{AgentId: id},
		}}})
	}
	good := reg(2, fuzzAgent, fuzzToken)
	hs := agentFrame(testagent.HandshakeResponse(fuzzAgent))
	return [][]byte{
		refRegistrationFrame(2, fuzzAgent, fuzzToken),
		refRegistrationFrame(2, fuzzAgent, "wrong"),
		refRegistrationFrame(1, fuzzAgent, fuzzToken),
		append(slices.Clone(good), hs...),
		good,
		reg(2, fuzzAgent, "wrong"),
		reg(2, fuzzAgent, ""),
		reg(1, fuzzAgent, fuzzToken),
		reg(2, "", fuzzToken),
		reg(2, "evil", fuzzToken),
		reg(2, "waf-2", fuzzToken),
		reg(2, "waf-\x00", fuzzToken),
		hs, // a handshake instead of a registration
		good[:len(good)-4],
		{0, 0, 0, 0},
		{0, 1, 0, 1, byte(agentv2.AgentToProxyFrameRegistration)},
		{0},
		{},
	}
}

// TestWriteFuzzCorpus rewrites testdata/fuzz from the seeds when run with
// -update-corpus; otherwise it checks that every seed is committed.
func TestWriteFuzzCorpus(t *testing.T) {
	t.Parallel()
	for name, seeds := range map[string][][]byte{
		"FuzzAgentHandshake":      agentHandshakeSeeds(),
		"FuzzProxyHandshake":      proxyHandshakeSeeds(),
		"FuzzReverseRegistration": registrationSeeds(),
	} {
		dir := filepath.Join("testdata", "fuzz", name)
		for i, s := range seeds {
			path := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
			if *updateCorpus {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != content {
				t.Errorf("%s is missing or stale: run go test ./reliability -run TestWriteFuzzCorpus -update-corpus", path)
			}
		}
	}
}
