package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"block 403", "audit admin-blocked,admin-1", // /admin
		"redirect 301", "to /login", // /old-login
		"audit sqli,sqli-1",    // SQL injection
		"challenge", "captcha", // bot
		"req set x-waf: pass",             // header mutation on allowed requests
		"resp set x-waf-agent: agentwire", // response headers
		"audit xss,xss-1",                 // streamed body
		"waf-uds", "waf-grpc",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if regexp.MustCompile(`\sERROR\s`).MatchString(got) {
		t.Errorf("a step failed:\n%s", got)
	}
	// Pool statistics: both agents, every connection ready, no errors.
	for _, line := range strings.Split(got, "\n") {
		if strings.HasPrefix(line, "waf-uds ") || strings.HasPrefix(line, "waf-grpc ") {
			if strings.Contains(line, "unix://") || strings.Contains(line, "grpc://") {
				if !strings.Contains(line, "2/2") {
					t.Errorf("pool line without 2/2 ready connections: %q", line)
				}
			}
		}
	}
}
