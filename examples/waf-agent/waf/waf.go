// Package waf is the policy of agentwire's example WAF agent, shared by the
// runnable agent (examples/waf-agent), the quickstart, the gateway example
// and the benchmarks.
//
// Policy, decided from request headers and bodies:
//   - /admin and below: block 403, audit tag "admin-blocked"
//   - a query that looks like SQL injection: block 403, rule "sqli-1"
//
// Paths and queries are normalised before matching (percent-decoded, up to
// three times for double encoding; '+' in queries is a space; lower case;
// whitespace and SQL comments collapsed; dot segments resolved), so an
// encoded attack is judged as what the application will see.
//   - /old-login: redirect 301 to /login
//   - a user agent containing "bot": challenge (captcha)
//   - a request body containing "<script": block 403, rule "xss-1"
//   - everything else: allow, with one request-header mutation
//     (x-waf: pass) so the proxy has something to apply.
package waf

import (
	"bytes"
	"context"
	"net/url"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire/agent"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Handler implements the example policy. It is safe for concurrent use.
type Handler struct {
	agent.Base
	// Seen counts request-headers events, for demos and tests.
	Seen atomic.Uint64
	// Blocked counts block decisions of any kind.
	Blocked atomic.Uint64
	// CacheTTL, when positive, marks request-header decisions cacheable by
	// the proxy for that long (agent.CacheFor): they depend on the path,
	// the query and the user agent, which is the directive's scope.
	CacheTTL time.Duration

	cachedPass atomic.Pointer[agentv2.AgentResponse]
}

var _ agent.Handler = (*Handler)(nil)

var sqliMarkers = []string{"union select", "' or 1=1", "' or '1'='1", "drop table", "; --"}

// RequestHeaders applies the header policy.
func (h *Handler) RequestHeaders(_ context.Context, ev *agentv2.RequestHeadersEvent) (*agentv2.AgentResponse, error) {
	h.Seen.Add(1)
	rawPath, rawQuery, _ := strings.Cut(ev.GetUri(), "?")
	p, query := normalizePath(rawPath), normalizeQuery(rawQuery)
	switch {
	case p == "/admin" || strings.HasPrefix(p, "/admin/"):
		return h.cacheable(h.block(403, "forbidden\n", "admin-blocked", "admin-1")), nil
	case containsAny(query, sqliMarkers):
		return h.cacheable(h.block(403, "request blocked\n", "sqli", "sqli-1")), nil
	case p == "/old-login":
		return h.cacheable(agent.Redirect("/login", 301)), nil
	case strings.Contains(strings.ToLower(header(ev.GetHeaders(), "user-agent")), "bot"):
		return h.cacheable(agent.Challenge("captcha", map[string]string{"reason": "automated client"})), nil
	}
	if h.CacheTTL <= 0 {
		return passAnswer, nil
	}
	if r := h.cachedPass.Load(); r != nil {
		return r, nil
	}
	r := h.cacheable(agent.AllowSetRequestHeader("x-waf", "pass"))
	h.cachedPass.Store(r)
	return r, nil
}

// cacheable adds the cache directive to r when CacheTTL is set.
func (h *Handler) cacheable(r *agentv2.AgentResponse) *agentv2.AgentResponse {
	if h.CacheTTL <= 0 {
		return r
	}
	return agent.CacheFor(r, h.CacheTTL, agent.ByPath(), agent.ByQuery(), agent.ByHeader("user-agent"))
}

// passAnswer is the answer to clean requests, built once: the SDK never
// writes to an answer, so every event may share it.
var passAnswer = agent.AllowSetRequestHeader("x-waf", "pass")

// RequestBodyChunk blocks script injection in request bodies.
func (h *Handler) RequestBodyChunk(_ context.Context, ev *agentv2.BodyChunkEvent) (*agentv2.AgentResponse, error) {
	if containsFold(ev.GetData(), "<script") {
		return h.block(403, "request blocked\n", "xss", "xss-1"), nil
	}
	return agent.Allow(), nil
}

// ResponseHeaders tags every response the WAF saw.
func (h *Handler) ResponseHeaders(_ context.Context, _ *agentv2.ResponseHeadersEvent) (*agentv2.AgentResponse, error) {
	r := agent.Allow()
	r.ResponseHeaders = append(r.ResponseHeaders, agent.SetHeader("x-waf-agent", "agentwire"))
	return r, nil
}

func (h *Handler) block(status uint32, body, tag, rule string) *agentv2.AgentResponse {
	h.Blocked.Add(1)
	r := agent.Block(status, body)
	r.Audit = agent.Audit([]string{tag}, rule)
	return r
}

func header(hs []*agentv2.Header, name string) string {
	for _, h := range hs {
		if strings.EqualFold(h.GetName(), name) {
			return h.GetValue()
		}
	}
	return ""
}

// containsFold reports whether data contains the lower-case ASCII needle,
// ignoring case, without copying data (bodies come in 16 KiB chunks).
func containsFold(data []byte, needle string) bool {
	for i := 0; i+len(needle) <= len(data); i++ {
		j := bytes.IndexByte(data[i:], needle[0])
		if j < 0 || i+j+len(needle) > len(data) {
			return false
		}
		i += j
		if strings.EqualFold(string(data[i:i+len(needle)]), needle) {
			return true
		}
	}
	return false
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// normalizePath returns the path the application will see: decoded, dot
// segments and doubled slashes resolved, lower case.
func normalizePath(p string) string {
	if strings.ContainsAny(p, "%") {
		p = unescape(p, url.PathUnescape)
	}
	if strings.Contains(p, "/.") || strings.Contains(p, "//") {
		p = path.Clean("/" + p)
	}
	return lower(p)
}

// normalizeQuery returns the query decoded ('+' is a space), lower case,
// with SQL comments and runs of whitespace collapsed to one space.
func normalizeQuery(q string) string {
	if strings.ContainsAny(q, "%+") {
		q = unescape(q, url.QueryUnescape)
	}
	q = lower(q)
	if strings.Contains(q, "/*") {
		q = sqlComment.Replace(q)
	}
	if strings.ContainsAny(q, "\t\n\r\v\f") || strings.Contains(q, "  ") {
		q = strings.Join(strings.Fields(q), " ")
	}
	return q
}

var sqlComment = strings.NewReplacer("/**/", " ", "/*", " ", "*/", " ")

// unescape decodes s up to three times, for doubly encoded input; a
// malformed escape leaves what was decoded so far.
func unescape(s string, decode func(string) (string, error)) string {
	for range 3 {
		d, err := decode(s)
		if err != nil || d == s {
			break
		}
		s = d
	}
	return s
}

// lower lower-cases s without allocating when it has no upper case.
func lower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' || c >= 0x80 {
			return strings.ToLower(s)
		}
	}
	return s
}
