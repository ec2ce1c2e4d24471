package waf

import (
	"context"
	"strings"
	"testing"
	"time"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

func TestContainsFold(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		data string
		want bool
	}{
		{"<script>", true},
		{"a=<SCRIPT src=x>", true},
		{"a=<ScRiPt", true},
		{"<scrip", false},
		{"<<<script", true},
		{strings.Repeat("<", 1000), false},
		{"", false},
		{"text <scripture", true}, // a prefix match is what the policy asks for
	} {
		if got := containsFold([]byte(tc.data), "<script"); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.data, got, tc.want)
		}
	}
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	h := &Handler{}
	ctx := context.Background()
	req := func(uri, ua string) *agentv2.RequestHeadersEvent {
		return &agentv2.RequestHeadersEvent{Uri: uri, Headers: []*agentv2.Header{{Name: "User-Agent", Value: ua}}}
	}
	for _, tc := range []struct {
		ev   *agentv2.RequestHeadersEvent
		want string
	}{
		{req("/admin", "x"), "block"},
		{req("/admin/users?id=1", "x"), "block"},
		{req("/administrator", "x"), "allow"},
		{req("/q?x=1' or 1=1", "x"), "block"},
		// Encodings and spellings of the same attacks are judged as decoded.
		{req("/q?x=1'%20or%201=1", "x"), "block"},
		{req("/s?q=1%27%20OR%201%3D1--", "x"), "block"},
		{req("/s?q=1%2527%2520OR%25201%253D1", "x"), "block"}, // doubly encoded
		{req("/s?q=1'+OR+1=1", "x"), "block"},
		{req("/s?q=1'%09or%20%201=1", "x"), "block"},
		{req("/s?q=1'/**/or/**/1=1", "x"), "block"},
		{req("/s?q=x%27%20UNION%20SELECT%20pw", "x"), "block"},
		{req("/%61dmin/users", "x"), "block"},
		{req("/ADMIN", "x"), "block"},
		{req("/x/../admin", "x"), "block"},
		{req("//admin", "x"), "block"},
		{req("/s?q=%zz' or 1=1", "x"), "block"}, // a malformed escape does not hide the rest
		{req("/s?q=o'reilly+books", "x"), "allow"},
		{req("/s?q=100%25", "x"), "allow"},
		{req("/old-login", "x"), "redirect"},
		{req("/", "GoogleBot/2.1"), "challenge"},
		{req("/", "Mozilla/5.0"), "allow"},
	} {
		r, err := h.RequestHeaders(ctx, tc.ev)
		if err != nil {
			t.Fatal(err)
		}
		got := "allow"
		switch {
		case r.GetBlock() != nil:
			got = "block"
		case r.GetRedirect() != nil:
			got = "redirect"
		case r.GetChallenge() != nil:
			got = "challenge"
		}
		if got != tc.want {
			t.Errorf("%s (%s): %s, want %s", tc.ev.GetUri(), tc.ev.GetHeaders()[0].GetValue(), got, tc.want)
		}
	}
	r, _ := h.RequestBodyChunk(ctx, &agentv2.BodyChunkEvent{Data: []byte(strings.Repeat("a", 16<<10) + "<Script>")})
	if r.GetBlock() == nil {
		t.Error("script in a body was allowed")
	}
}

func TestCacheTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	plain := &Handler{}
	r, _ := plain.RequestHeaders(ctx, &agentv2.RequestHeadersEvent{Uri: "/"})
	if r.GetCache() != nil {
		t.Error("no CacheTTL: no directive")
	}
	h := &Handler{CacheTTL: time.Minute}
	for _, uri := range []string{"/", "/admin", "/q?x=1' or 1=1", "/old-login"} {
		r, _ := h.RequestHeaders(ctx, &agentv2.RequestHeadersEvent{Uri: uri})
		d := r.GetCache()
		if d.GetTtlMs() != 60_000 || !d.GetScope().GetPath() || !d.GetScope().GetQuery() || len(d.GetScope().GetHeaders()) != 1 {
			t.Errorf("%s: directive %v, want a minute by path, query and user agent", uri, d)
		}
	}
}
