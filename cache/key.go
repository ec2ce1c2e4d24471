package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"slices"
	"strings"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// scope is a CacheScope in canonical form: header names lower-cased,
// sorted and deduplicated; id names it in keys and in the scope lists.
type scope struct {
	method, path, query, clientIP, route bool
	headers                              []string
	id                                   string
}

func newScope(s *agentv2.CacheScope) scope {
	sc := scope{method: s.GetMethod(), path: s.GetPath(), query: s.GetQuery(), clientIP: s.GetClientIp(), route: s.GetRoute()}
	for _, h := range s.GetHeaders() {
		sc.headers = append(sc.headers, strings.ToLower(h))
	}
	slices.Sort(sc.headers)
	sc.headers = slices.Compact(sc.headers)
	var b strings.Builder
	for _, f := range []struct {
		on   bool
		name string
	}{{sc.method, "m"}, {sc.path, "p"}, {sc.query, "q"}, {sc.clientIP, "c"}, {sc.route, "r"}} {
		if f.on {
			b.WriteString(f.name)
		}
	}
	for _, h := range sc.headers {
		b.WriteString("|")
		b.WriteString(h)
	}
	sc.id = b.String()
	return sc
}

// key is the cache key of ev's request for agentID under sc: a SHA-256
// over length-prefixed fields, so that no two requests that differ in
// scope collide (a decision must never reach a request it was not made
// for).
func (sc *scope) key(agentID string, ev *agentv2.RequestHeadersEvent) string {
	h := sha256.New()
	field(h, "agentwire-cache-v1")
	field(h, agentID)
	field(h, sc.id)
	path, query, _ := strings.Cut(ev.GetUri(), "?")
	if sc.method {
		field(h, ev.GetMethod())
	}
	if sc.path {
		field(h, path)
	}
	if sc.query {
		field(h, query)
	}
	if sc.clientIP {
		field(h, ev.GetMetadata().GetClientIp())
	}
	if sc.route {
		field(h, ev.GetMetadata().GetRouteId())
	}
	for _, name := range sc.headers {
		n := 0
		for _, hd := range ev.GetHeaders() {
			if strings.EqualFold(hd.GetName(), name) {
				field(h, hd.GetValue())
				n++
			}
		}
		binary.Write(h, binary.BigEndian, uint32(n)) //nolint:errcheck // hash writes never fail
	}
	return string(h.Sum(nil))
}

// fingerprint identifies ev's request entirely (everything an agent can
// read but the ids and timestamps), for joining identical misses.
func fingerprint(agentID string, ev *agentv2.RequestHeadersEvent) string {
	h := sha256.New()
	field(h, "agentwire-flight-v1")
	field(h, agentID)
	field(h, ev.GetMethod())
	field(h, ev.GetUri())
	field(h, ev.GetHttpVersion())
	md := ev.GetMetadata()
	for _, s := range []string{md.GetClientIp(), md.GetServerName(), md.GetProtocol(), md.GetTlsVersion(), md.GetRouteId(), md.GetUpstreamId()} {
		field(h, s)
	}
	for _, hd := range ev.GetHeaders() {
		field(h, hd.GetName())
		field(h, hd.GetValue())
	}
	return string(h.Sum(nil))
}

func field(h hash.Hash, s string) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s)))
	h.Write(n[:])
	h.Write([]byte(s))
}

// hasBody reports whether ev announces a request body.
func hasBody(ev *agentv2.RequestHeadersEvent) bool {
	for _, hd := range ev.GetHeaders() {
		switch {
		case strings.EqualFold(hd.GetName(), "transfer-encoding"):
			return true
		case strings.EqualFold(hd.GetName(), "content-length"):
			if v := strings.TrimSpace(hd.GetValue()); v != "" && v != "0" {
				return true
			}
		}
	}
	return false
}
