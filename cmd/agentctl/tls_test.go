package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/agentwire/agentwire/agent"
)

// TestTLSFlags: -cacert and -server-name reach an agent serving gRPC over
// TLS with a private CA; without them the certificate is refused.
func TestTLSFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caFile, cert := testCA(t, dir, "agent.internal")
	srv, err := agent.NewServer(agent.Base{}, agent.WithAgentID("tls-agent"))
	require.NoError(t, err)
	gs := grpc.NewServer(append(agent.GRPCServerOptions(), grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
	})))...)
	srv.RegisterGRPC(gs)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- gs.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		gs.Stop()
		assert.NoError(t, <-done)
	})
	ep := "grpcs://" + ln.Addr().String()

	code, out, errOut := runBinary(t, "probe", ep, "-cacert", caFile, "-server-name", "agent.internal", "-wait", "100ms")
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, `(?m)^agent\s+tls-agent`, out)

	code, _, errOut = runBinary(t, "probe", ep, "-timeout", "2s")
	assert.Equal(t, exitUnreachable, code, errOut)
	assert.Contains(t, errOut, "certificate")
}

// testCA writes a CA certificate to dir and returns its path and a server
// certificate for name signed by it.
func testCA(t *testing.T, dir, name string) (string, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agentctl test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caFile := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caTmpl, &key.PublicKey, caKey)
	require.NoError(t, err)
	return caFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
