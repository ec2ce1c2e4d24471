package caddyagentwire

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"

	"github.com/agentwire/agentwire/pool"
	"github.com/agentwire/agentwire/transport"
)

// ReverseEndpoint is the endpoint of an agent that dials Caddy, through
// the handler's reverse listener, instead of being dialled.
const ReverseEndpoint = "reverse"

// Reverse is a listener that agents dial (reverse connections), for agents
// Caddy cannot reach. It feeds the handler's pool: an agent that registers
// with the id of an agent of the chain serves its events.
type Reverse struct {
	// Address is unix:///path or tcp://<loopback IP>:port: tokens cross
	// it in the clear, so it takes no other TCP address.
	Address string `json:"address"`
	// Tokens are accepted from any agent without a token of its own;
	// AgentTokens from one agent id only. Each is a placeholder, such as
	// {env.AGENTWIRE_TOKEN} or {file./run/secrets/token}, replaced when the
	// config loads: the config (and Caddy's admin API) never holds a token.
	Tokens      []string          `json:"tokens,omitempty"`
	AgentTokens map[string]string `json:"agent_tokens,omitempty"`
	// Allow lists the agent ids that may connect, as path.Match patterns
	// (default: the ids of the chain's agents).
	Allow []string `json:"allow,omitempty"`
	// MaxConns caps each agent's reverse connections (default 4); more
	// are refused at registration.
	MaxConns int `json:"max_conns,omitempty"`
}

// reverseAuth is a listener's tokens, their placeholders replaced.
type reverseAuth struct {
	tokens      []string
	agentTokens map[string]string
}

// validate checks the listener's settings; errors name the subdirective.
func (r *Reverse) validate() error {
	if _, err := r.network(); err != nil {
		return fmt.Errorf("reverse: %w", err)
	}
	if len(r.Tokens) == 0 && len(r.AgentTokens) == 0 {
		return errors.New("reverse: no token: set token or agent_token")
	}
	for _, tok := range r.Tokens {
		if !isPlaceholder(tok) {
			return errors.New("reverse: token: want a placeholder such as {env.AGENTWIRE_TOKEN}, not the token itself")
		}
	}
	for id, tok := range r.AgentTokens {
		if !isPlaceholder(tok) {
			return fmt.Errorf("reverse: agent_token %q: want a placeholder such as {env.AGENTWIRE_TOKEN}, not the token itself", id)
		}
	}
	for _, p := range r.Allow {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("reverse: allow %q: %w", p, err)
		}
	}
	if r.MaxConns < 0 {
		return errors.New("reverse: negative max_conns")
	}
	return nil
}

// isPlaceholder reports whether s is one placeholder, {name}.
func isPlaceholder(s string) bool {
	return len(s) > 2 && s[0] == '{' && s[len(s)-1] == '}' && strings.Count(s, "{") == 1
}

// network returns the listener's address as Caddy's network address.
func (r *Reverse) network() (caddy.NetworkAddress, error) {
	u, err := url.Parse(r.Address)
	if err != nil {
		return caddy.NetworkAddress{}, fmt.Errorf("address %q: %w", r.Address, err)
	}
	switch u.Scheme {
	case "unix":
		if u.Path == "" || u.Host != "" {
			return caddy.NetworkAddress{}, fmt.Errorf("address %q: want unix:///path", r.Address)
		}
		return caddy.NetworkAddress{Network: "unix", Host: u.Path}, nil
	case "tcp":
		ap, err := netip.ParseAddrPort(u.Host)
		if err != nil || !ap.Addr().IsLoopback() || ap.Port() == 0 || u.Path != "" {
			return caddy.NetworkAddress{}, fmt.Errorf("address %q: want tcp://<loopback IP>:<port> (tokens are sent in the clear)", r.Address)
		}
		return caddy.ParseNetworkAddress("tcp/" + u.Host)
	default:
		return caddy.NetworkAddress{}, fmt.Errorf("address %q: want unix:///path or tcp://<loopback IP>:<port>", r.Address)
	}
}

// resolve replaces the tokens' placeholders. Its errors name the
// placeholder, never a value.
func (r *Reverse) resolve() (reverseAuth, error) {
	repl := caddy.NewReplacer()
	value := func(ph string) (string, error) {
		v := repl.ReplaceKnown(ph, "")
		if v == "" || v == ph {
			return "", fmt.Errorf("agentwire: reverse: token %s is empty (or not a known placeholder)", ph)
		}
		return v, nil
	}
	auth := reverseAuth{agentTokens: make(map[string]string, len(r.AgentTokens))}
	for _, ph := range r.Tokens {
		v, err := value(ph)
		if err != nil {
			return reverseAuth{}, err
		}
		auth.tokens = append(auth.tokens, v)
	}
	for id, ph := range r.AgentTokens {
		v, err := value(ph)
		if err != nil {
			return reverseAuth{}, err
		}
		auth.agentTokens[id] = v
	}
	return auth, nil
}

// digest sums the tokens, for the pool key: a changed token makes a new
// pool and listener.
func (a reverseAuth) digest() string {
	sum := sha256.New()
	for _, t := range a.tokens {
		fmt.Fprintf(sum, "%d:%s;", len(t), t)
	}
	for _, id := range slices.Sorted(maps.Keys(a.agentTokens)) {
		fmt.Fprintf(sum, "%d:%s=%d:%s;", len(id), id, len(a.agentTokens[id]), a.agentTokens[id])
	}
	return hex.EncodeToString(sum.Sum(nil))
}

// listen starts the listener, feeding p, with the tokens of auth, for the
// agent ids allow matches. It listens through Caddy, which shares the
// socket with the listener of the config being replaced, so that a reload
// can move the address to a new pool.
func (r *Reverse) listen(p *pool.Pool, allow []string, auth reverseAuth, logger *slog.Logger) (*transport.ReverseListener, error) {
	opts := append(p.ReverseOptions(),
		transport.WithConnOptions(transport.WithProxyID("caddy-agentwire", caddyVersion()),
			transport.WithHandshakeTimeout(DefaultHandshakeTimeout), transport.WithLogger(logger)),
		transport.WithAllowedAgents(allow...))
	for _, t := range auth.tokens {
		opts = append(opts, transport.WithGlobalToken(t))
	}
	for id, t := range auth.agentTokens {
		opts = append(opts, transport.WithAgentToken(id, t))
	}
	na, err := r.network()
	if err != nil {
		return nil, fmt.Errorf("reverse: %w", err)
	}
	v, err := na.Listen(context.Background(), 0, net.ListenConfig{})
	if err != nil {
		return nil, fmt.Errorf("reverse: listen %s: %w", r.Address, err)
	}
	ln, ok := v.(net.Listener)
	if !ok {
		return nil, fmt.Errorf("reverse: listen %s: not a stream listener", r.Address)
	}
	l, err := transport.NewReverseListener(opts...)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("reverse: %w", err)
	}
	go func() {
		err := l.Serve(context.Background(), ln)
		if err != nil && !errors.Is(err, transport.ErrListenerClosed) {
			logger.Error("agentwire: reverse listener stopped", "address", r.Address, "error", err)
		}
	}()
	return l, nil
}

// reverseUse is a reverse address in one config (its context's Done).
type reverseUse struct {
	config  <-chan struct{}
	address string
}

// addressClaim is the pool a reverse address feeds in one config, and
// how many handlers claimed it.
type addressClaim struct {
	key  string
	refs int
}

// reverseUses holds the claims of every loaded config: two pools on one
// address would split its agents between them, so a config may not have
// them.
var reverseUses = struct {
	sync.Mutex
	m map[reverseUse]*addressClaim
}{m: map[reverseUse]*addressClaim{}}

// claimAddress records that h's pool (key) listens on h's reverse address
// in the config of ctx, unless another pool of that config does.
func (h *Handler) claimAddress(ctx caddy.Context, key string) error {
	u := reverseUse{config: ctx.Done(), address: h.Reverse.Address}
	reverseUses.Lock()
	defer reverseUses.Unlock()
	c := reverseUses.m[u]
	if c == nil {
		c = &addressClaim{key: key}
		reverseUses.m[u] = c
	}
	if c.key != key {
		return fmt.Errorf("agentwire: reverse %s: another agentwire handler with other agents listens there", u.address)
	}
	c.refs++
	h.claimed = &u
	return nil
}

// releaseAddress undoes claimAddress.
func (h *Handler) releaseAddress() {
	if h.claimed == nil {
		return
	}
	reverseUses.Lock()
	defer reverseUses.Unlock()
	if c := reverseUses.m[*h.claimed]; c != nil {
		c.refs--
		if c.refs <= 0 {
			delete(reverseUses.m, *h.claimed)
		}
	}
	h.claimed = nil
}
