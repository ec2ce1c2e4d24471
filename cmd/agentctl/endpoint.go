package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/agentwire/agentwire/transport"
)

// tlsFlags configure TLS for grpcs:// and https:// endpoints.
type tlsFlags struct {
	caFile, certFile, keyFile, serverName string
}

// config returns the TLS configuration the flags ask for, nil when none
// was given (the transport then uses the system roots).
func (f *tlsFlags) config() (*tls.Config, error) {
	if *f == (tlsFlags{}) {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.serverName}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, failf(exitUsage, "-cacert: %v", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, failf(exitUsage, "-cacert %s: no PEM certificate in it", f.caFile)
		}
	}
	if (f.certFile == "") != (f.keyFile == "") {
		return nil, failf(exitUsage, "-cert and -key go together")
	}
	if f.certFile != "" {
		cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return nil, failf(exitUsage, "-cert/-key: %v", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// checkEndpoint catches endpoints that cannot work before dialling, and
// says what was probably meant.
func checkEndpoint(endpoint string, tlsSet bool) error {
	if !strings.Contains(endpoint, "://") {
		if _, _, err := net.SplitHostPort(endpoint); err == nil {
			return failf(exitUsage, "endpoint %q has no scheme: did you mean grpc://%s (or http://%s for Connect)?", endpoint, endpoint, endpoint)
		}
		if abs, err := filepath.Abs(endpoint); err == nil && (strings.ContainsRune(endpoint, '/') || fileExists(endpoint)) {
			return failf(exitUsage, "endpoint %q has no scheme: did you mean unix://%s?", endpoint, abs)
		}
		return failf(exitUsage, "endpoint %q has no scheme: want unix:///path.sock, grpc://host:port, grpcs://host:port, http://host:port or https://host:port", endpoint)
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return failf(exitUsage, "endpoint %q: %v", endpoint, err)
	}
	switch u.Scheme {
	case "unix":
		if q := u.Query(); q.Has("encoding") {
			if _, err := transport.ParseUnixEncoding(q.Get("encoding")); err != nil {
				return failf(exitUsage, "endpoint %q: %v", endpoint, err)
			}
		}
		return checkSocket(u.Path)
	case "grpc", "http":
		if tlsSet {
			return failf(exitUsage, "TLS flags given for %s, a plaintext endpoint: use grpcs:// or https://", endpoint)
		}
		fallthrough
	case "grpcs", "https":
		if u.Host == "" {
			return failf(exitUsage, "endpoint %q: no host:port", endpoint)
		}
		return nil
	}
	return failf(exitUsage, "endpoint %q: unknown scheme %q (want unix, grpc, grpcs, http or https)", endpoint, u.Scheme)
}

// checkSocket says when path cannot be an agent's socket.
func checkSocket(path string) error {
	if path == "" {
		return failf(exitUsage, "unix endpoint with no path: want unix:///path/agent.sock")
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return failf(exitUnreachable, "cannot reach unix://%s: no such socket (is the agent running, and listening there?)", path)
	case err != nil:
		return failf(exitUnreachable, "cannot reach unix://%s: %v", path, err)
	case fi.Mode()&fs.ModeSocket == 0:
		return failf(exitUnreachable, "cannot reach unix://%s: not a socket but a %s", path, fileKind(fi))
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func fileKind(fi fs.FileInfo) string {
	switch {
	case fi.IsDir():
		return "directory"
	case fi.Mode().IsRegular():
		return "regular file"
	}
	return "file of mode " + fi.Mode().Type().String()
}

// speaksHTTP1 reports whether the server at addr answers a plain HTTP/1.1
// request with an HTTP/1.x status line (a gRPC server answers it with an
// HTTP/2 frame): the usual reason a dial fails with a frame error.
func speaksHTTP1(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer nc.Close()
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	if _, err := nc.Write([]byte("OPTIONS * HTTP/1.1\r\nHost: agentctl\r\nConnection: close\r\n\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 8)
	n, _ := nc.Read(buf)
	return strings.HasPrefix(string(buf[:n]), "HTTP/1.")
}

// hostOf returns the host:port of a grpc:// or http:// endpoint, "" for
// others.
func hostOf(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "grpc" && u.Scheme != "http") {
		return ""
	}
	return u.Host
}

// describeErr renders err for an operator: each distinct message of the
// chain once, without the code prefixes and gRPC's "rpc error" wrapping
// that layers repeat.
func describeErr(err error) string {
	msg := err.Error()
	var parts []string
	for _, p := range strings.Split(grpcNoise.ReplaceAllString(msg, ""), ": ") {
		p = strings.Trim(strings.TrimSpace(p), `"`)
		if p == "" || isCodeName(p) || p == "rpc error" || p == "transport" || p == "agent" || p == "codec" {
			continue
		}
		if len(parts) > 0 && parts[len(parts)-1] == p {
			continue
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return msg
	}
	return strings.Join(parts, ": ")
}

// grpcNoise is grpc-go's wrapping around the message that matters.
var grpcNoise = regexp.MustCompile(`rpc error: code = \w+ desc = |connection error: desc = |transport: Error while dialing: `)

// isCodeName reports whether s is a status code's name as errors print it
// ("unavailable", "deadline_exceeded").
func isCodeName(s string) bool {
	switch s {
	case "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists",
		"permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range",
		"unimplemented", "internal", "unavailable", "data_loss", "unauthenticated":
		return true
	}
	return false
}
