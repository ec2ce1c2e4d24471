package caddyagentwire

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/agentwire/agentwire/httpguard"
)

// Agent is one agent of the handler's chain: where to reach it (the
// connection settings, shared by every handler with the same agents) and
// how the chain uses it.
type Agent struct {
	// ID names the agent in logs, metrics and audit records.
	ID string `json:"id"`
	// Endpoint is unix:///path, grpc://host:port, grpcs://host:port,
	// http(s)://host:port (Connect) or dns:///name:port?scheme=grpc.
	Endpoint string `json:"endpoint"`
	// Connections to each agent instance (default 4).
	Connections int `json:"connections,omitempty"`
	// DialTimeout bounds the first connection when the config loads
	// (default 5s).
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// HandshakeTimeout bounds each connection's handshake (default 5s).
	HandshakeTimeout caddy.Duration `json:"handshake_timeout,omitempty"`
	// TLS configures grpcs:// and https:// endpoints.
	TLS *TLS `json:"tls,omitempty"`

	// Timeout bounds the agent's answer to each event (default 1s).
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Events the agent receives besides request_headers: request_body,
	// response_headers, response_body, request_complete, websocket_frames
	// (default request_complete).
	Events []string `json:"events,omitempty"`
	// FailOpen lets requests through when the agent fails; otherwise they
	// get FailStatus (default 503).
	FailOpen   bool `json:"fail_open,omitempty"`
	FailStatus int  `json:"fail_status,omitempty"`
	// MaxBodyBytes bounds the bytes of each body the agent inspects
	// (default 1 MiB).
	MaxBodyBytes int64 `json:"max_body_bytes,omitempty"`
	// Parallel asks the agent at the same time as the one before it.
	Parallel bool `json:"parallel,omitempty"`
}

// TLS is the client side of a TLS connection to an agent.
type TLS struct {
	// CA is a PEM file of the roots that verify the agent (default: the
	// system's).
	CA string `json:"ca,omitempty"`
	// Cert and Key are PEM files of a client certificate, for mTLS.
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
	// ServerName overrides the name verified (default: the endpoint's host).
	ServerName string `json:"server_name,omitempty"`
	// InsecureSkipVerify turns verification off: for tests only.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
}

// Defaults of the connection settings.
const (
	DefaultDialTimeout      = 5 * time.Second
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultDrainTimeout     = 5 * time.Second
)

// eventNames maps the config's event names to httpguard's.
var eventNames = map[string]httpguard.Events{
	"request_headers":  httpguard.RequestHeaders,
	"request_body":     httpguard.RequestBody,
	"response_headers": httpguard.ResponseHeaders,
	"response_body":    httpguard.ResponseBody,
	"request_complete": httpguard.RequestComplete,
	"websocket_frames": httpguard.WebSocketFrames,
}

var schemes = []string{"unix", "grpc", "grpcs", "http", "https", "dns"}

// validate checks the handler's config; errors name the directive.
func (h *Handler) validate() error {
	if len(h.Agents) == 0 {
		return fmt.Errorf("agentwire: no agents")
	}
	if h.ChunkSize < 0 || h.DrainTimeout < 0 {
		return fmt.Errorf("agentwire: negative chunk_size or drain_timeout")
	}
	seen := map[string]bool{}
	for i := range h.Agents {
		a := &h.Agents[i]
		if a.ID == "" {
			return fmt.Errorf("agentwire: agent %d has no id", i+1)
		}
		if seen[a.ID] {
			return fmt.Errorf("agentwire: agent %q listed twice", a.ID)
		}
		seen[a.ID] = true
		if err := a.validate(); err != nil {
			return fmt.Errorf("agentwire: agent %q: %w", a.ID, err)
		}
		if a.Endpoint == ReverseEndpoint && h.Reverse == nil {
			return fmt.Errorf("agentwire: agent %q: endpoint reverse needs a reverse listener", a.ID)
		}
	}
	if h.Reverse != nil {
		if err := h.Reverse.validate(); err != nil {
			return fmt.Errorf("agentwire: %w", err)
		}
	}
	return nil
}

func (a *Agent) validate() error {
	if a.Endpoint == ReverseEndpoint {
		if a.Connections != 0 || a.DialTimeout != 0 || a.HandshakeTimeout != 0 || a.TLS != nil {
			return fmt.Errorf("connections, dial_timeout, handshake_timeout or tls on a reverse agent (it dials in)")
		}
		return a.validateChain()
	}
	u, err := url.Parse(a.Endpoint)
	if err != nil || !slices.Contains(schemes, u.Scheme) {
		return fmt.Errorf("endpoint %q: want unix://, grpc://, grpcs://, http://, https://, dns:/// or reverse", a.Endpoint)
	}
	if a.TLS != nil && u.Scheme == "unix" {
		return fmt.Errorf("tls on a unix:// endpoint")
	}
	if a.TLS != nil && (a.TLS.Cert == "") != (a.TLS.Key == "") {
		return fmt.Errorf("tls: cert and key go together")
	}
	if a.Connections < 0 || a.DialTimeout < 0 || a.HandshakeTimeout < 0 {
		return fmt.Errorf("negative connections or timeout")
	}
	return a.validateChain()
}

// validateChain checks how the chain uses the agent.
func (a *Agent) validateChain() error {
	if a.Timeout < 0 || a.MaxBodyBytes < 0 {
		return fmt.Errorf("negative timeout or body limit")
	}
	if a.FailStatus != 0 && (a.FailStatus < 100 || a.FailStatus > 599) {
		return fmt.Errorf("fail status %d: want 100 to 599", a.FailStatus)
	}
	if a.FailOpen && a.FailStatus != 0 {
		return fmt.Errorf("fail open with a fail status")
	}
	for _, e := range a.Events {
		if _, ok := eventNames[e]; !ok {
			return fmt.Errorf("unknown event %q", e)
		}
	}
	return nil
}

// chainOptions returns the agent's options in a httpguard chain.
func (a *Agent) chainOptions() []httpguard.AgentOption {
	var opts []httpguard.AgentOption
	if a.Timeout > 0 {
		opts = append(opts, httpguard.WithTimeout(time.Duration(a.Timeout)))
	}
	if len(a.Events) > 0 {
		var e httpguard.Events
		for _, name := range a.Events {
			e |= eventNames[name]
		}
		opts = append(opts, httpguard.WithEvents(e))
	}
	switch {
	case a.FailOpen:
		opts = append(opts, httpguard.FailOpen())
	case a.FailStatus != 0:
		opts = append(opts, httpguard.FailClosed(a.FailStatus))
	default:
		opts = append(opts, httpguard.FailClosed(http.StatusServiceUnavailable))
	}
	if a.MaxBodyBytes > 0 {
		opts = append(opts, httpguard.WithMaxBodyBytes(a.MaxBodyBytes))
	}
	if a.Parallel {
		opts = append(opts, httpguard.Parallel())
	}
	return opts
}

// tlsConfig loads the agent's TLS files; nil without TLS settings.
func (t *TLS) tlsConfig() (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	// InsecureSkipVerify is opt-in, documented as for tests only.
	cfg := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("tls ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca %s: no PEM certificate", t.CA)
		}
	}
	if t.Cert != "" {
		cert, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("tls cert: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// poolKey names the handler's pool in the shared registry: its agents'
// connection settings in id order, with the TLS files' contents (a changed
// certificate makes a new pool), the drain timeout and the reverse
// listener with its tokens' digest.
func (h *Handler) poolKey() (string, error) {
	type conn struct {
		ID, Endpoint    string
		Connections     int
		Dial, Handshake caddy.Duration
		TLS             *TLS
		Files           string
		Drain           caddy.Duration
	}
	conns := make([]conn, 0, len(h.Agents))
	for _, a := range h.Agents {
		c := conn{ID: a.ID, Endpoint: a.Endpoint, Connections: a.Connections, Dial: a.DialTimeout,
			Handshake: a.HandshakeTimeout, TLS: a.TLS, Drain: h.DrainTimeout}
		if a.TLS != nil {
			sum := sha256.New()
			for _, f := range []string{a.TLS.CA, a.TLS.Cert, a.TLS.Key} {
				if f == "" {
					continue
				}
				b, err := os.ReadFile(f)
				if err != nil {
					return "", fmt.Errorf("agentwire: agent %q: tls: %w", a.ID, err)
				}
				sum.Write(b)
			}
			c.Files = hex.EncodeToString(sum.Sum(nil))
		}
		conns = append(conns, c)
	}
	slices.SortFunc(conns, func(a, b conn) int { return strings.Compare(a.ID, b.ID) })
	key := struct {
		Agents  []conn
		Reverse *Reverse
		Auth    string
	}{Agents: conns}
	if h.Reverse != nil {
		key.Reverse, key.Auth = h.Reverse, h.auth.digest()
	}
	b, err := json.Marshal(key)
	if err != nil {
		return "", fmt.Errorf("agentwire: pool key: %w", err)
	}
	return string(b), nil
}
