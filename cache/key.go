package cache

import (
	"crypto/sha256"
	"encoding/binary"
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

// appendKey appends the full key of ev's request for agentID under sc:
// length-prefixed fields, so that no two requests that differ in scope
// share a key.
func (sc *scope) appendKey(b []byte, agentID string, ev *agentv2.RequestHeadersEvent) []byte {
	b = field(b, "agentwire-cache-v1")
	b = field(b, agentID)
	b = field(b, sc.id)
	path, query, _ := strings.Cut(ev.GetUri(), "?")
	if sc.method {
		b = field(b, ev.GetMethod())
	}
	if sc.path {
		b = field(b, path)
	}
	if sc.query {
		b = field(b, query)
	}
	if sc.clientIP {
		b = field(b, ev.GetMetadata().GetClientIp())
	}
	if sc.route {
		b = field(b, ev.GetMetadata().GetRouteId())
	}
	for _, name := range sc.headers {
		count := uint32(0)
		for _, hd := range ev.GetHeaders() {
			// Lengths first: case-folding every name costs more.
			if n := hd.GetName(); len(n) == len(name) && (n == name || strings.EqualFold(n, name)) {
				b = field(b, hd.GetValue())
				count++
			}
		}
		b = binary.BigEndian.AppendUint32(b, count)
	}
	return b
}

// fingerprint identifies ev's request entirely (everything an agent can
// read but the ids and timestamps), for joining identical misses.
func fingerprint(agentID string, ev *agentv2.RequestHeadersEvent) Key {
	var arr [2048]byte
	b := field(arr[:0], "agentwire-flight-v1")
	b = field(b, agentID)
	b = field(b, ev.GetMethod())
	b = field(b, ev.GetUri())
	b = field(b, ev.GetHttpVersion())
	md := ev.GetMetadata()
	for _, s := range []string{md.GetClientIp(), md.GetServerName(), md.GetProtocol(), md.GetTlsVersion(), md.GetRouteId(), md.GetUpstreamId()} {
		b = field(b, s)
	}
	for _, hd := range ev.GetHeaders() {
		b = field(b, hd.GetName())
		b = field(b, hd.GetValue())
	}
	return sha256.Sum256(b)
}

func field(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// hasBody reports whether ev announces a request body.
func hasBody(ev *agentv2.RequestHeadersEvent) bool {
	for _, hd := range ev.GetHeaders() {
		n := hd.GetName()
		switch {
		case len(n) == len("transfer-encoding") && strings.EqualFold(n, "transfer-encoding"):
			return true
		case len(n) == len("content-length") && strings.EqualFold(n, "content-length"):
			if v := strings.TrimSpace(hd.GetValue()); v != "" && v != "0" {
				return true
			}
		}
	}
	return false
}
