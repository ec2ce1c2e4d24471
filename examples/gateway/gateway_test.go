package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// startGateway runs the gateway exactly as `go run ./examples/gateway` does,
// on a free loopback port, and returns its base URL.
func startGateway(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan string, 1)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsURL = "http://" + mln.Addr().String() + "/metrics"
	go func() { done <- serve(ctx, ln, mln, "", "", logger, func(addr string) { ready <- addr }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case addr := <-ready:
		return "http://" + addr
	case err := <-done:
		t.Fatalf("gateway did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not start")
	}
	return ""
}

// metricsURL is where the gateway under test serves Prometheus metrics.
var metricsURL string

var client = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// The README's curl commands, as requests.
func TestGatewayReadmeRequests(t *testing.T) {
	base := startGateway(t)

	t.Run("blocked", func(t *testing.T) { // curl -i http://127.0.0.1:8080/admin
		res, err := client.Get(base + "/admin")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden || res.Header.Get("x-agentwire-audit") != "admin-blocked" {
			t.Fatalf("got %d audit=%q body=%q", res.StatusCode, res.Header.Get("x-agentwire-audit"), body)
		}
	})
	t.Run("allowed", func(t *testing.T) { // curl -i http://127.0.0.1:8080/hello
		res, err := client.Get(base + "/hello")
		if err != nil {
			t.Fatal(err)
		}
		var echo struct {
			URI     string            `json:"uri"`
			Headers map[string]string `json:"headers"`
		}
		err = json.NewDecoder(res.Body).Decode(&echo)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 200 || echo.URI != "/hello" || echo.Headers["x-waf"] != "pass" {
			t.Fatalf("got %d %+v", res.StatusCode, echo)
		}
		if res.Header.Get("x-waf-agent") != "agentwire" {
			t.Fatalf("response header mutation missing: %v", res.Header)
		}
	})
	t.Run("redirect", func(t *testing.T) {
		res, err := client.Get(base + "/old-login")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 301 || res.Header.Get("location") != "/login" {
			t.Fatalf("got %d location=%q", res.StatusCode, res.Header.Get("location"))
		}
	})
	t.Run("challenge", func(t *testing.T) {
		req, _ := http.NewRequest("GET", base+"/pricing", nil)
		req.Header.Set("user-agent", "evil-bot/1.0")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 403 || res.Header.Get("x-agentwire-challenge") != "captcha" {
			t.Fatalf("got %d %v", res.StatusCode, res.Header)
		}
	})
	t.Run("streamed body blocked", func(t *testing.T) { // curl -i -d 'x=<script>' .../comment
		body := strings.Repeat("a", 40<<10) + "<script>alert(1)</script>"
		res, err := client.Post(base+"/comment", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 403 || res.Header.Get("x-agentwire-audit") != "xss" {
			t.Fatalf("got %d %v", res.StatusCode, res.Header)
		}
	})
	t.Run("streamed body allowed", func(t *testing.T) {
		body := strings.Repeat("b", 100<<10)
		res, err := client.Post(base+"/upload", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var echo struct {
			BodyBytes int `json:"body_bytes"`
		}
		_ = json.NewDecoder(res.Body).Decode(&echo)
		res.Body.Close()
		if res.StatusCode != 200 || echo.BodyBytes != len(body) {
			t.Fatalf("got %d, upstream saw %d bytes", res.StatusCode, echo.BodyBytes)
		}
	})
	t.Run("prometheus metrics", func(t *testing.T) { // curl http://127.0.0.1:9464/metrics
		res, err := client.Get(metricsURL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		text := string(body)
		for _, want := range []string{
			"agentwire_client_events_total", `agent_id="waf"`, `event_kind="request_headers"`,
			"rpc_client_call_duration_seconds", "agentwire_client_connections",
			"http_server_request_duration_seconds", `service_name="agentwire-gateway"`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("metrics lack %q:\n%.2000s", want, text)
			}
		}
	})
	t.Run("websocket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ws, _, err := websocket.Dial(ctx, base+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.CloseNow()
		if err := ws.Write(ctx, websocket.MessageText, []byte("ping over agentwire")); err != nil {
			t.Fatal(err)
		}
		_, got, err := ws.Read(ctx)
		if err != nil || string(got) != "ping over agentwire" {
			t.Fatalf("echo: %q %v", got, err)
		}
	})
}
