package httpguard

import (
	"bufio"
	"errors"
	"net"
	"net/http"

	"github.com/agentwire/agentwire/events"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// ErrLateBlock is what a guarded response's Write returns once an agent
// ended the request after the response had started: the guard then aborts
// the response (http.ErrAbortHandler) when the handler returns.
var ErrLateBlock = errors.New("httpguard: request ended by an agent after the response started")

// writer is the ResponseWriter next sees. Response headers go to the
// agents when next writes them, and reach the client with the agents'
// mutations; body writes go to the agents chunk by chunk before the
// client. Not safe for concurrent use, as any ResponseWriter.
type writer struct {
	w        http.ResponseWriter
	x        *exchange
	r        *http.Request
	status   int
	decided  bool // next's header has been through the agents
	sent     bool // a header reached the client
	discard  bool // a decision replaced next's response
	abort    bool // the response must be cut
	hijacked bool
	held     []byte // body held while an agent needs more
	resized  bool   // an agent's mutation changed the body's length
}

var (
	_ http.ResponseWriter = (*writer)(nil)
	_ http.Hijacker       = (*writer)(nil)
)

// Header implements http.ResponseWriter.
func (w *writer) Header() http.Header { return w.w.Header() }

// WriteHeader implements http.ResponseWriter.
func (w *writer) WriteHeader(code int) {
	if w.decided || w.hijacked {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.w.WriteHeader(code) // informational: passed through
		return
	}
	w.decided, w.status = true, code
	x := w.x
	if x.decision() == nil && x.wants(kindResponseHeaders) {
		ev := events.ResponseHeaders(x.corr, code, w.w.Header())
		x.ask(kindResponseHeaders, func(int, bool) *agentv2.ProxyToAgent {
			return &agentv2.ProxyToAgent{Message: ev.Message}
		})
	}
	if x.decision() != nil || x.stopped() {
		w.replace()
		return
	}
	// The header reaches the client with the first body bytes the agents
	// let through (or the end; or a flush when no agent judges the body):
	// a block on the first chunk can still replace the response.
	applyOps(w.w.Header(), x.takeOps(kindResponseHeaders))
}

// Write implements http.ResponseWriter.
func (w *writer) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	if !w.discard && !w.abort {
		w.lateBlock()
	}
	if w.discard {
		return len(p), nil
	}
	if w.abort {
		return 0, ErrLateBlock
	}
	x, size := w.x, w.x.g.cfg.chunkSize
	for off := 0; off < len(p); off += size {
		part := p[off:min(off+size, len(p))]
		ok := true
		if x.wants(kindResponseBody) {
			part, ok = w.inspect(part, false)
		}
		if !ok || w.overLimit() {
			if w.lateBlock() {
				return off, ErrLateBlock
			}
			return len(p), nil
		}
		if err := w.emit(part); err != nil {
			return off, err
		}
		x.sent.Add(int64(len(part)))
	}
	return len(p), nil
}

// FlushError flushes what the agents have let through.
func (w *writer) FlushError() error {
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	if w.discard || w.abort || w.x.needy(kindResponseBody) {
		return nil
	}
	if !w.sent && w.x.wants(kindResponseBody) {
		// Agents judge the body: the header waits for the first bytes they
		// let through, so that a block on them can still replace the
		// response. (httputil.ReverseProxy flushes before its first write.)
		return nil
	}
	if err := w.emit(nil); err != nil {
		return err
	}
	return http.NewResponseController(w.w).Flush()
}

// Hijack implements http.Hijacker: a hijacked connection (an upgrade)
// leaves the guard.
func (w *writer) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.hijacked = true
	if w.x.session != "" && w.x.wants(kindFrame) {
		c = newFrameConn(c, w.x)
	}
	return c, rw, nil
}

// Unwrap lets http.ResponseController reach the other methods of the
// underlying writer.
func (w *writer) Unwrap() http.ResponseWriter { return w.w }

// end finishes the response after next returned: the last body chunk goes
// to the agents, held bytes to the client, and a decision that came with
// nothing sent yet replaces the response. It reports whether the response
// must be aborted.
func (w *writer) end() bool {
	if w.hijacked {
		return false
	}
	if !w.decided {
		w.WriteHeader(http.StatusOK)
	}
	x := w.x
	var last []byte
	if !w.discard && !w.abort && x.wants(kindResponseBody) && x.decision() == nil {
		last, _ = w.inspect(nil, true)
	}
	if !w.discard && !w.abort && !w.lateBlock() {
		if err := w.emit(last); err != nil {
			w.abort = true
		}
	}
	x.setStatus(w.status)
	return w.abort
}

// emit sends part to the client, or holds it while an agent needs more.
func (w *writer) emit(part []byte) error {
	if w.x.needy(kindResponseBody) {
		w.held = append(w.held, part...)
		return nil
	}
	if !w.sent {
		w.sendHeader()
	}
	if len(w.held) > 0 {
		held := w.held
		w.held = nil
		if _, err := w.w.Write(held); err != nil {
			return err
		}
	}
	if len(part) == 0 {
		return nil
	}
	_, err := w.w.Write(part)
	return err
}

// overLimit fails the agents that need more than they may inspect.
func (w *writer) overLimit() bool {
	return w.x.needy(kindResponseBody) && w.x.overLimit(kindResponseBody)
}

// lateBlock handles a decision that ended the request while next was
// writing: it replaces the response if none reached the client, and
// otherwise marks it for abort. It reports the latter.
func (w *writer) lateBlock() bool {
	if w.x.decision() == nil && !w.x.stopped() {
		return false
	}
	if !w.sent {
		w.replace()
		return false
	}
	w.abort = true
	return true
}

// replace answers the client with the decision instead of next's
// response; next's later writes are discarded.
func (w *writer) replace() {
	if w.discard {
		return
	}
	w.discard, w.held = true, nil
	clear(w.w.Header())
	w.sent = true
	if resp := w.x.decision(); resp != nil && w.x.Err() == nil {
		w.status = w.x.answer(w.w, w.r, resp)
	}
}

func (w *writer) sendHeader() {
	w.sent = true
	if w.resized {
		w.w.Header().Del("Content-Length") // an agent changed the body's length
	}
	w.w.WriteHeader(w.status)
}

// inspect sends a chunk of the response body to the agents and returns it
// as an agent's mutation leaves it. Until the header reaches the client, a
// change of length drops its Content-Length; after, it fails the agent:
// the client would otherwise get a response that lies about its length.
func (w *writer) inspect(part []byte, last bool) ([]byte, bool) {
	x := w.x
	total := int64(-1)
	if last {
		total = x.sent.Load()
	}
	fixed := w.sent && w.w.Header().Get("Content-Length") != ""
	out, ok := x.inspect(kindResponseBody, part, last, total, fixed)
	if ok && len(out) != len(part) {
		w.resized = true
	}
	return out, ok
}
