package reliability_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/testagent"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// authority is a test certificate authority.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

var serial atomic.Int64

func newAuthority(t *testing.T, name string) *authority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &authority{cert: cert, key: key, pool: pool}
}

// issue signs a leaf for 127.0.0.1, valid from notBefore to notAfter.
func (a *authority) issue(t *testing.T, cn string, usage x509.ExtKeyUsage, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// pki is what the TLS tests use: the proxy's and agents' authority, a
// stranger's authority, and the certificates clients may present.
type pki struct {
	ca, rogue            *authority
	server, client       tls.Certificate
	rogueClient, expired tls.Certificate
	serverConf           *tls.Config // requires a client certificate from ca
	validClient          *tls.Config
	badClients           map[string]*tls.Config
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	now := time.Now()
	p := &pki{ca: newAuthority(t, "agentwire test CA"), rogue: newAuthority(t, "rogue CA")}
	p.server = p.ca.issue(t, "server", x509.ExtKeyUsageServerAuth, now.Add(-time.Hour), now.Add(time.Hour))
	p.client = p.ca.issue(t, "waf-1", x509.ExtKeyUsageClientAuth, now.Add(-time.Hour), now.Add(time.Hour))
	p.rogueClient = p.rogue.issue(t, "waf-1", x509.ExtKeyUsageClientAuth, now.Add(-time.Hour), now.Add(time.Hour))
	p.expired = p.ca.issue(t, "waf-1", x509.ExtKeyUsageClientAuth, now.Add(-2*time.Hour), now.Add(-time.Hour))
	p.serverConf = &tls.Config{
		Certificates: []tls.Certificate{p.server}, ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs: p.ca.pool, MinVersion: tls.VersionTLS12,
	}
	client := func(certs ...tls.Certificate) *tls.Config {
		return &tls.Config{RootCAs: p.ca.pool, Certificates: certs, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	}
	p.validClient = client(p.client)
	untrusting := client(p.client)
	untrusting.RootCAs = p.rogue.pool
	p.badClients = map[string]*tls.Config{
		"NoClientCertificate":       client(),
		"CertificateFromRogueCA":    client(p.rogueClient),
		"ExpiredCertificate":        client(p.expired),
		"ServerNotTrustedByClient":  untrusting,
		"TLS12NoClientCertificate":  func() *tls.Config { c := client(); c.MaxVersion = tls.VersionTLS12; return c }(),
		"TLS12CertificateFromRogue": func() *tls.Config { c := client(p.rogueClient); c.MaxVersion = tls.VersionTLS12; return c }(),
	}
	return p
}

// countingHandler counts the events it decides.
type countingHandler struct {
	agent.Base
	events atomic.Int64
}

func (h *countingHandler) RequestHeaders(ctx context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	h.events.Add(1)
	return agent.Allow(), nil
}

// TestMTLSGRPC: an agent's gRPC server requires client certificates from
// the proxy's authority. The proxy with a valid one gets through; without
// one, with a stranger's or an expired one, not trusting the agent's
// certificate, or in plaintext, it is refused and no event reaches the
// agent.
func TestMTLSGRPC(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	h := &countingHandler{}
	srv, err := agent.NewServer(h, agent.WithLogger(quietLogger))
	require.NoError(t, err)
	gs := grpc.NewServer(append(agent.GRPCServerOptions(), grpc.Creds(credentials.NewTLS(p.serverConf)))...)
	srv.RegisterGRPC(gs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = gs.Serve(ln)
	}()
	defer func() {
		gs.Stop()
		wg.Wait()
		srv.Close()
	}()
	addr := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	send := func(c transport.Conn) error {
		_, err := c.Send(ctx, headersEvent("tls-1", "/"))
		return err
	}
	t.Run("ValidClientCertificate", func(t *testing.T) {
		c, err := transport.DialGRPC(ctx, addr, transport.WithTLSConfig(p.validClient))
		require.NoError(t, err)
		defer c.Close(context.Background())
		require.NoError(t, send(c))
	})
	before := h.events.Load()
	for name, cfg := range p.badClients {
		t.Run(name, func(t *testing.T) {
			c, err := transport.DialGRPC(ctx, addr, transport.WithTLSConfig(cfg), transport.WithHandshakeTimeout(3*time.Second))
			if err == nil {
				defer c.Close(context.Background())
				t.Fatalf("connected; an event went %v", send(c))
			}
			assertRefused(t, err)
		})
	}
	t.Run("Plaintext", func(t *testing.T) {
		c, err := transport.Dial(ctx, "grpc://"+addr, transport.WithHandshakeTimeout(3*time.Second))
		if err == nil {
			defer c.Close(context.Background())
			t.Fatal("a plaintext client connected")
		}
		assertRefused(t, err)
	})
	assert.Equal(t, before, h.events.Load(), "an event from a refused client reached the agent")
	figure(t, "tls.grpc", "%d clients without a valid certificate (or trust) refused by an mTLS gRPC agent", len(p.badClients)+1)
}

func assertRefused(t *testing.T, err error) {
	t.Helper()
	require.Error(t, err)
	var e *agentwire.Error
	require.ErrorAs(t, err, &e)
	switch e.Code() {
	case agentwire.CodeUnavailable, agentwire.CodeUnauthenticated, agentwire.CodeDeadlineExceeded:
	default:
		t.Errorf("refusal with code %v: %v", e.Code(), err)
	}
	hostileRejected.Add(1)
}

// TestMTLSReverse: the proxy's reverse listener on TCP requires client
// certificates (on top of the token). Agents without a valid certificate
// are refused before they can register: never admitted, reported as
// Unauthenticated.
func TestMTLSReverse(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	var (
		mu       sync.Mutex
		rejected []error
		admitted atomic.Int64
	)
	l, err := transport.NewReverseListener(
		transport.WithAgentToken("waf-1", hostileToken),
		transport.WithCloseConnsOnClose(),
		transport.WithConnOptions(transport.WithLogger(quietLogger)),
		transport.WithAdmitHandler(func(string, transport.Conn, *agentv2.RegistrationRequest) { admitted.Add(1) }),
		transport.WithRejectHandler(func(_ net.Addr, _ string, err error) {
			mu.Lock()
			rejected = append(rejected, err)
			mu.Unlock()
		}),
	)
	require.NoError(t, err)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, l.Close(ctx))
	}()
	a, err := l.ListenTCP("127.0.0.1:0", p.serverConf)
	require.NoError(t, err)
	addr := a.String()

	// register dials with cfg (plaintext if nil), registers as waf-1 and
	// reports whether the proxy accepted.
	register := func(cfg *tls.Config) (bool, error) {
		d := &net.Dialer{Timeout: 5 * time.Second}
		var nc net.Conn
		var err error
		if cfg == nil {
			nc, err = d.Dial("tcp", addr)
		} else {
			nc, err = tls.DialWithDialer(d, "tcp", addr, cfg)
		}
		if err != nil {
			return false, err
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Write(registration(&agentv2.RegistrationRequest{ProtocolVersion: 2, AgentId: "waf-1", AuthToken: hostileToken})); err != nil {
			return false, err
		}
		var m agentv2.ProxyToAgent
		r := codec.NewReader(nc, 0)
		if err := r.ReadProxyToAgent(&m); err != nil {
			return false, err
		}
		if !m.GetRegistrationResponse().GetAccepted() {
			return false, nil
		}
		if err := r.ReadProxyToAgent(&m); err != nil {
			return false, err
		}
		return true, codec.WriteFrameTo(nc, testagent.HandshakeResponse("waf-1"), 0)
	}

	ok, err := register(p.validClient)
	require.NoError(t, err)
	require.True(t, ok, "a client with a valid certificate was refused")
	eventually(t, 5*time.Second, "valid client admitted", func() bool { return admitted.Load() == 1 })

	bad := map[string]*tls.Config{"Plaintext": nil}
	for name, cfg := range p.badClients {
		bad[name] = cfg
	}
	for name, cfg := range bad {
		t.Run(name, func(t *testing.T) {
			ok, err := register(cfg)
			assert.False(t, ok, "admitted")
			assert.Error(t, err, "the proxy answered instead of refusing the connection")
		})
	}
	eventually(t, 10*time.Second, "every refusal reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(rejected) == len(bad)
	})
	mu.Lock()
	for _, err := range rejected {
		code := agentwire.CodeOf(err)
		assert.Contains(t, []agentwire.Code{agentwire.CodeUnauthenticated, agentwire.CodeUnavailable}, code, "rejection %v", err)
	}
	mu.Unlock()
	assert.Equal(t, int64(1), admitted.Load(), "a client without a valid certificate was admitted")
	hostileRejected.Add(int64(len(bad)))
	figure(t, "tls.reverse", "%d clients without a valid certificate (or trust) refused by the mTLS reverse listener", len(bad))
}
