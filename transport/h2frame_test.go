package transport

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/agentwire/agentwire"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// h2Frame encodes one HTTP/2 frame.
func h2Frame(typ, flags byte, payload []byte) []byte {
	n := len(payload)
	b := []byte{byte(n >> 16), byte(n >> 8), byte(n), typ, flags, 0, 0, 0, 0}
	return append(b, payload...)
}

// h2Settings encodes SETTINGS entries, id/value pairs.
func h2Settings(pairs ...uint32) []byte {
	var b []byte
	for i := 0; i+1 < len(pairs); i += 2 {
		b = binary.BigEndian.AppendUint16(b, uint16(pairs[i]))
		b = binary.BigEndian.AppendUint32(b, pairs[i+1])
	}
	return b
}

// TestFrameSizeCap: every SETTINGS_MAX_FRAME_SIZE the server sends reads
// as 16 KiB, whatever the read boundaries; every other byte is unchanged,
// including a DATA frame whose payload looks like a setting and a
// SETTINGS ack.
func TestFrameSizeCap(t *testing.T) {
	t.Parallel()
	var in, want bytes.Buffer
	add := func(in1, want1 []byte) { in.Write(in1); want.Write(want1) }
	same := func(b []byte) { add(b, b) }

	add(h2Frame(0x4, 0, h2Settings(0x3, 250, 0x5, 1<<20, 0x4, 1<<20)),
		h2Frame(0x4, 0, h2Settings(0x3, 250, 0x5, h2SendFrameSize, 0x4, 1<<20)))
	same(h2Frame(0x4, 0x1, nil)) // ack, empty
	same(h2Frame(0x0, 0, h2Settings(0x5, 1<<20, 0x5, 1<<24-1)))
	same(h2Frame(0x6, 0, make([]byte, 8))) // ping
	add(h2Frame(0x4, 0, h2Settings(0x5, 1<<24-1)), h2Frame(0x4, 0, h2Settings(0x5, h2SendFrameSize)))
	same(h2Frame(0x0, 0, bytes.Repeat([]byte{5}, 70000)))
	add(h2Frame(0x4, 0, h2Settings(0x1, 4096, 0x5, 32768)), h2Frame(0x4, 0, h2Settings(0x1, 4096, 0x5, h2SendFrameSize)))

	rng := rand.New(rand.NewPCG(1, 2))
	for _, chunk := range []int{1, 2, 5, 7, 9, 4096, 0} {
		b := bytes.Clone(in.Bytes())
		f := &frameSizeCap{}
		for rest := b; len(rest) > 0; {
			k := chunk
			if k == 0 {
				k = 1 + rng.IntN(40)
			}
			k = min(k, len(rest))
			f.rewrite(rest[:k])
			rest = rest[k:]
		}
		require.Equal(t, want.Bytes(), b, "chunks of %d", chunk)
	}
}

// TestFrameSizeCapConn: the wrapper rewrites what Read returns and keeps
// the connection otherwise transparent.
func TestFrameSizeCapConn(t *testing.T) {
	t.Parallel()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := wrapFrameSizeCap(a)
	go func() {
		_, _ = b.Write(h2Frame(0x4, 0, h2Settings(0x5, 1<<20)))
	}()
	got := make([]byte, h2FrameHeaderLen+h2SettingLen)
	_, err := c.Read(got[:4])
	require.NoError(t, err)
	_, err = c.Read(got[4:])
	require.NoError(t, err)
	assert.Equal(t, h2Frame(0x4, 0, h2Settings(0x5, h2SendFrameSize)), got)
}

// TestConnectTLSNeedsHTTP2: an https agent that does not negotiate h2 by
// ALPN (a TLS server without it) fails the dial at once with Unavailable.
func TestConnectTLSNeedsHTTP2(t *testing.T) {
	t.Parallel()
	ca := newInternalTestCA(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{ca.leaf}, MinVersion: tls.VersionTLS12})
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = DialConnect(ctx, "https://"+ln.Addr().String(), WithTLSConfig(&tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12}))
	require.Error(t, err)
	assert.Equal(t, agentwire.CodeUnavailable, agentwire.CodeOf(err), "%v", err)
	assert.Contains(t, err.Error(), `negotiated "", not HTTP/2`)
}

// internalCA is a self-signed loopback server certificate and the pool
// that trusts it.
type internalCA struct {
	leaf tls.Certificate
	pool *x509.CertPool
}

func newInternalTestCA(t *testing.T) internalCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "agent"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return internalCA{leaf: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool: pool}
}
