package caddyagentwire

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("agentwire", parseCaddyfile)
	// With the auth handlers: after the rewrites, before encode, the
	// handle blocks and reverse_proxy.
	httpcaddyfile.RegisterDirectiveOrder("agentwire", httpcaddyfile.After, "forward_auth")
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	agentwire [<matcher>] [<id> <endpoint>] {
//		agent <id> <endpoint> {
//			connections       <n>
//			dial_timeout      <duration>
//			handshake_timeout <duration>
//			tls {
//				ca          <file>
//				cert        <cert file> <key file>
//				server_name <name>
//				insecure_skip_verify
//			}
//			timeout  <duration>
//			events   <event...>
//			fail     open | closed [<status>]
//			max_body <size>
//			parallel
//		}
//		route_id      <id>
//		upstream      <id>
//		audit_header  <name>
//		chunk_size    <size>
//		drain_timeout <duration>
//		reverse unix:///<path> | tcp://<loopback IP>:<port> {
//			token       <placeholder>
//			agent_token <id> <placeholder>
//			allow       <pattern...>
//			max_conns   <n>
//		}
//	}
//
// The agents form the chain in the order given; an agent on the directive's
// line comes first. An agent whose endpoint is "reverse" dials Caddy's
// reverse listener; tokens are placeholders such as {env.AGENTWIRE_TOKEN}.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive's name
	if d.NextArg() {
		a := Agent{ID: d.Val()}
		if !d.NextArg() {
			return d.Errf("agentwire: agent %q needs an endpoint", a.ID)
		}
		a.Endpoint = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
		h.Agents = append(h.Agents, a)
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "agent":
			err = h.unmarshalAgent(d)
		case "route_id":
			err = oneArg(d, &h.RouteID)
		case "upstream":
			err = oneArg(d, &h.Upstream)
		case "audit_header":
			err = oneArg(d, &h.AuditHeader)
		case "chunk_size":
			var n int64
			err = sizeArg(d, &n)
			h.ChunkSize = int(n)
		case "drain_timeout":
			err = durationArg(d, &h.DrainTimeout)
		case "reverse":
			err = h.unmarshalReverse(d)
		default:
			err = d.Errf("agentwire: unknown subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	// Refuse what Provision would, with the Caddyfile line.
	if err := h.validate(); err != nil {
		return d.WrapErr(err)
	}
	return nil
}

// unmarshalAgent reads one agent block.
func (h *Handler) unmarshalAgent(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.Errf("agentwire: agent: want <id> <endpoint>, got %d arguments", len(args))
	}
	a := Agent{ID: args[0], Endpoint: args[1]}
	for d.NextBlock(1) {
		var err error
		switch d.Val() {
		case "connections":
			err = intArg(d, &a.Connections)
		case "dial_timeout":
			err = durationArg(d, &a.DialTimeout)
		case "handshake_timeout":
			err = durationArg(d, &a.HandshakeTimeout)
		case "tls":
			a.TLS = new(TLS)
			err = unmarshalTLS(d, a.TLS)
		case "timeout":
			err = durationArg(d, &a.Timeout)
		case "events":
			a.Events = d.RemainingArgs()
			if len(a.Events) == 0 {
				err = d.ArgErr()
			}
		case "fail":
			err = unmarshalFail(d, &a)
		case "max_body":
			err = sizeArg(d, &a.MaxBodyBytes)
		case "parallel":
			if d.NextArg() {
				err = d.ArgErr()
			}
			a.Parallel = true
		default:
			err = d.Errf("agentwire: agent %q: unknown subdirective %q", a.ID, d.Val())
		}
		if err != nil {
			return err
		}
	}
	h.Agents = append(h.Agents, a)
	return nil
}

// unmarshalReverse reads the reverse block.
func (h *Handler) unmarshalReverse(d *caddyfile.Dispenser) error {
	if h.Reverse != nil {
		return d.Err("agentwire: reverse: only one reverse listener")
	}
	r := &Reverse{}
	if err := oneArg(d, &r.Address); err != nil {
		return err
	}
	for d.NextBlock(1) {
		var err error
		switch d.Val() {
		case "token":
			var tok string
			err = oneArg(d, &tok)
			r.Tokens = append(r.Tokens, tok)
		case "agent_token":
			var id, tok string
			if !d.Args(&id, &tok) || d.NextArg() {
				return d.Err("agentwire: reverse: agent_token: want <id> <placeholder>")
			}
			if r.AgentTokens == nil {
				r.AgentTokens = map[string]string{}
			}
			r.AgentTokens[id] = tok
		case "allow":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Err("agentwire: reverse: allow: want <pattern...>")
			}
			r.Allow = append(r.Allow, args...)
		case "max_conns":
			err = intArg(d, &r.MaxConns)
		default:
			err = d.Errf("agentwire: reverse: unknown subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	h.Reverse = r
	return nil
}

// unmarshalFail reads "fail open" or "fail closed [<status>]".
func unmarshalFail(d *caddyfile.Dispenser, a *Agent) error {
	args := d.RemainingArgs()
	switch {
	case len(args) == 1 && args[0] == "open":
		a.FailOpen = true
	case len(args) == 1 && args[0] == "closed":
		a.FailStatus = 0
	case len(args) == 2 && args[0] == "closed":
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return d.Errf("agentwire: fail closed: bad status %q", args[1])
		}
		a.FailStatus = n
	default:
		return d.Err("agentwire: fail: want open or closed [<status>]")
	}
	return nil
}

// unmarshalTLS reads a tls block.
func unmarshalTLS(d *caddyfile.Dispenser, t *TLS) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(2) {
		var err error
		switch d.Val() {
		case "ca":
			err = oneArg(d, &t.CA)
		case "cert":
			if !d.Args(&t.Cert, &t.Key) || d.NextArg() {
				err = d.Err("agentwire: tls cert: want <cert file> <key file>")
			}
		case "server_name":
			err = oneArg(d, &t.ServerName)
		case "insecure_skip_verify":
			t.InsecureSkipVerify = true
		default:
			err = d.Errf("agentwire: tls: unknown subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func oneArg(d *caddyfile.Dispenser, s *string) error {
	name := d.Val()
	if !d.Args(s) || d.NextArg() {
		return d.Errf("agentwire: %s: want one argument", name)
	}
	return nil
}

func intArg(d *caddyfile.Dispenser, n *int) error {
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return d.Errf("agentwire: bad number %q", s)
	}
	*n = v
	return nil
}

func durationArg(d *caddyfile.Dispenser, v *caddy.Duration) error {
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("agentwire: bad duration %q: %v", s, err)
	}
	*v = caddy.Duration(dur)
	return nil
}

func sizeArg(d *caddyfile.Dispenser, n *int64) error {
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	v, err := humanize.ParseBytes(s)
	if err != nil || v > 1<<62 {
		return d.Errf("agentwire: bad size %q", s)
	}
	*n = int64(v)
	return nil
}
