package main

import (
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/coder/websocket"
)

// upstreamHandler is the embedded upstream: it echoes what it received as
// JSON (so mutations the agent made are visible), serves a small page at /
// and a websocket echo at /ws.
func upstreamHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil || c.Write(r.Context(), typ, msg) != nil {
				return
			}
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		names := make([]string, 0, len(r.Header))
		for k := range r.Header {
			names = append(names, k)
		}
		sort.Strings(names)
		headers := make(map[string]string, len(names))
		for _, k := range names {
			headers[strings.ToLower(k)] = strings.Join(r.Header[k], ", ")
		}
		w.Header().Set("content-type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{
			"upstream":   "agentwire example upstream",
			"method":     r.Method,
			"uri":        r.URL.RequestURI(),
			"headers":    headers,
			"body_bytes": len(body),
		})
	})
	return mux
}
