package transport_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testCA is a certificate authority made up for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a leaf certificate for cn, for a server (with the loopback
// address) or a client.
func (ca *testCA) issue(t *testing.T, cn string, server bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// certBinding is a verifier that admits an agent only if its client
// certificate names its agent id.
func certBinding(ctx context.Context, reg *agentv2.RegistrationRequest, _ net.Addr) error {
	state, ok := transport.PeerTLSState(ctx)
	if !ok || len(state.PeerCertificates) == 0 {
		return errors.New("no client certificate")
	}
	if cn := state.PeerCertificates[0].Subject.CommonName; cn != reg.GetAgentId() {
		return agentwire.Errorf(agentwire.CodePermissionDenied, "certificate is for %q", cn)
	}
	return nil
}

// TestReverseMTLS: a listener that requires client certificates refuses
// clients without a valid one before they can register, and admits an
// agent with one.
func TestReverseMTLS(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t, "agentwire test CA")
	rogue := newTestCA(t, "rogue CA")
	serverCfg := &tls.Config{
		Certificates: []tls.Certificate{ca.issue(t, "proxy", true)},
		ClientCAs:    ca.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
	rl := &revListener{network: "tcp", admitted: make(chan admittedConn, 8), rejected: make(chan rejectedConn, 64)}
	l, err := transport.NewReverseListener(
		transport.WithTokenVerifier(certBinding),
		transport.WithCloseConnsOnClose(),
		transport.WithRegistrationTimeout(2*time.Second),
		transport.WithAdmitHandler(func(id string, c transport.Conn, reg *agentv2.RegistrationRequest) {
			rl.admitted <- admittedConn{id, c, reg}
		}),
		transport.WithRejectHandler(func(peer net.Addr, id string, err error) { rl.rejected <- rejectedConn{peer, id, err} }),
	)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, l.Close(ctxT(t, 5*time.Second))) })
	rl.ReverseListener = l
	addr, err := l.ListenTCP("127.0.0.1:0", serverCfg)
	require.NoError(t, err)
	rl.addr = addr.String()
	rl.agentAddr = "tcp://" + rl.addr

	clientCfg := func(certs ...tls.Certificate) *tls.Config {
		return &tls.Config{RootCAs: ca.pool, Certificates: certs, MinVersion: tls.VersionTLS12}
	}

	refused := map[string]func(t *testing.T){
		"NoCertificate": func(t *testing.T) { rawTLSRegister(t, rl.addr, clientCfg()) },
		"RogueCA":       func(t *testing.T) { rawTLSRegister(t, rl.addr, clientCfg(rogue.issue(t, "waf-1", false))) },
		"ServerCertAsClient": func(t *testing.T) {
			rawTLSRegister(t, rl.addr, clientCfg(ca.issue(t, "waf-1", true)))
		},
		"Plaintext": func(t *testing.T) {
			a := dialRaw(t, rl)
			a.register(t, reg("waf-1", "cert"))
			a.closedWithin(t, 3*time.Second)
		},
	}
	for name, try := range refused {
		t.Run(name, func(t *testing.T) {
			try(t)
			r := rl.nextRejected(t)
			assert.Equal(t, agentwire.CodeUnauthenticated, agentwire.CodeOf(r.err), "%v", r.err)
			assert.Contains(t, r.err.Error(), "tls handshake")
			assert.Empty(t, r.id, "refused before registration was read")
		})
	}

	t.Run("AgentWithValidCertificate", func(t *testing.T) {
		_, srv := newServer(t, agent.WithAgentID("waf-1"))
		runReverseAgent(t, srv, rl.agentAddr, agent.WithAgentToken("cert"),
			agent.WithTLSConfig(clientCfg(ca.issue(t, "waf-1", false))))
		a := rl.nextAdmitted(t)
		assert.Equal(t, "waf-1", a.id)
		sendOK(t, a.c, "over-mtls")
	})

	t.Run("CertificateForAnotherAgent", func(t *testing.T) {
		_, srv := newServer(t, agent.WithAgentID("waf-2"))
		errs := make(chan error, 16)
		runReverseAgent(t, srv, rl.agentAddr, agent.WithAgentToken("cert"),
			agent.WithTLSConfig(clientCfg(ca.issue(t, "waf-1", false))),
			agent.WithDialErrorHandler(func(err error, _ time.Duration) {
				select {
				case errs <- err:
				default:
				}
			}))
		r := rl.nextRejected(t)
		assert.Equal(t, agentwire.CodePermissionDenied, agentwire.CodeOf(r.err), "%v", r.err)
		assert.Equal(t, "waf-2", r.id)
		select {
		case err := <-errs:
			assert.ErrorIs(t, err, agent.ErrRegistrationRejected)
			assert.Equal(t, agentwire.CodePermissionDenied, agentwire.CodeOf(err))
		case <-time.After(5 * time.Second):
			t.Fatal("the agent was not told")
		}
	})

	t.Run("AgentWithoutCertificate", func(t *testing.T) {
		_, srv := newServer(t, agent.WithAgentID("waf-1"))
		d, err := agent.NewReverseDialer(srv, rl.agentAddr, agent.WithAgentToken("cert"),
			agent.WithTLSConfig(clientCfg()), agent.WithReconnectBackoff(time.Hour, time.Hour))
		require.NoError(t, err)
		done := make(chan error, 1)
		go func() { done <- d.Run(context.Background()) }()
		r := rl.nextRejected(t)
		assert.Equal(t, agentwire.CodeUnauthenticated, agentwire.CodeOf(r.err), "%v", r.err)
		require.Eventually(t, func() bool { return d.Stats().Failed == 1 }, 5*time.Second, time.Millisecond)
		require.NoError(t, d.Close(ctxT(t, 5*time.Second)))
		require.NoError(t, <-done)
		assert.Zero(t, d.Stats().Registered)
	})

	assert.Equal(t, uint64(1), l.Stats().Admitted)
}

// rawTLSRegister connects with cfg and tries to register; the proxy must
// refuse before answering.
func rawTLSRegister(t *testing.T, addr string, cfg *tls.Config) {
	t.Helper()
	cfg.ServerName = "127.0.0.1"
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer nc.Close()
	tc := tls.Client(nc, cfg)
	require.NoError(t, tc.SetDeadline(time.Now().Add(5*time.Second)))
	if err := tc.Handshake(); err != nil {
		return // refused during the handshake (TLS 1.2 style)
	}
	a := &rawAgent{nc: tc, r: codec.NewReader(tc, 0)}
	msg := &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Registration{Registration: reg("waf-1", "cert")}}
	b, err := msg.AppendFrame(nil, 0)
	require.NoError(t, err)
	_, _ = tc.Write(b) // may already fail
	var m agentv2.ProxyToAgent
	err = a.r.ReadProxyToAgent(&m)
	require.Error(t, err, "the proxy answered a client without a valid certificate: %v", &m)
}
