package transport_test

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// refAgent is a reference-style agent written from the formats of
// Zentinel's uds_server.rs with encoding/json and generic MessagePack
// values, independently of internal/wire/refenc: a JSON handshake (a
// protobuf one makes it hang up), events answered in order with
// audit.custom.correlation_id, pings echoed as pongs, cancels recorded.
type refAgent struct {
	t       *testing.T
	path    string
	msgpack bool // it can speak MessagePack
	// reply answers an event; nil answers allow.
	reply func(c *refConn, typ byte, ev map[string]any)

	mu     sync.Mutex
	events []refEvent
	raw    [][]byte // control payloads (cancels, pings) as received
	conns  chan *refConn
	ln     net.Listener
	wg     sync.WaitGroup
}

type refEvent struct {
	typ byte
	ev  map[string]any
}

// refConn is one accepted connection and the encoding it negotiated.
type refConn struct {
	nc  net.Conn
	enc string
	mu  sync.Mutex
}

func startRefAgent(t *testing.T, msgpackOK bool, reply func(c *refConn, typ byte, ev map[string]any)) *refAgent {
	t.Helper()
	a := &refAgent{t: t, path: filepath.Join(shortTempDir(t), "ref.sock"), msgpack: msgpackOK,
		reply: reply, conns: make(chan *refConn, 16)}
	ln, err := net.Listen("unix", a.path)
	require.NoError(t, err)
	a.ln = ln
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				defer nc.Close()
				a.serve(nc)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-a.conns:
				c.nc.Close()
				continue
			default:
			}
			break
		}
		a.wg.Wait()
	})
	return a
}

func readRefFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	p := make([]byte, binary.BigEndian.Uint32(hdr[:4])-1)
	_, err := io.ReadFull(r, p)
	return hdr[4], p, err
}

func (c *refConn) write(typ byte, p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	hdr := binary.BigEndian.AppendUint32(nil, uint32(len(p)+1))
	_, _ = c.nc.Write(append(append(hdr, typ), p...))
}

// encode marshals v in the negotiated encoding.
func (c *refConn) encode(v any) []byte {
	var b []byte
	var err error
	if c.enc == "msgpack" {
		b, err = msgpack.Marshal(v)
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		panic(err)
	}
	return b
}

func (a *refAgent) serve(nc net.Conn) {
	typ, p, err := readRefFrame(nc)
	var hs struct {
		SupportedVersions  []int    `json:"supported_versions"`
		SupportedEncodings []string `json:"supported_encodings"`
	}
	if err != nil || typ != 0x01 || json.Unmarshal(p, &hs) != nil {
		return // uds_server.rs drops a handshake it cannot parse
	}
	c := &refConn{nc: nc, enc: "json"}
	for _, e := range hs.SupportedEncodings {
		if e == "json" || e == "msgpack" && a.msgpack {
			c.enc = e
			break
		}
	}
	resp, _ := json.Marshal(map[string]any{
		"protocol_version": 2, "success": true, "error": nil, "encoding": c.enc,
		"capabilities": map[string]any{
			"agent_id": "ref-agent", "name": "ref", "version": "0.0.1",
			"supported_events": []int{0, 1, 2, 3, 4, 5, 6, 7},
			"features": map[string]any{"streaming_body": true, "websocket": true, "guardrails": true,
				"config_push": true, "metrics_export": false, "concurrent_requests": 8, "cancellation": true,
				"flow_control": true, "health_reporting": true},
			"limits": map[string]any{"max_body_size": 1 << 20, "max_concurrency": 8, "preferred_chunk_size": 65536},
		},
	})
	c.write(0x02, resp)
	a.conns <- c
	a.loop(c)
}

// loop serves a handshaken connection until it closes.
func (a *refAgent) loop(c *refConn) {
	nc := c.nc
	for {
		typ, p, err := readRefFrame(nc)
		if err != nil {
			return
		}
		switch {
		case typ == 0x41:
			a.record(p)
			c.write(0x42, p)
		case typ == 0x40:
			a.record(p)
		case typ >= 0x10 && typ <= 0x17:
			var ev map[string]any
			if c.enc == "msgpack" && (len(p) == 0 || p[0] != '{') {
				err = msgpack.Unmarshal(p, &ev)
			} else {
				err = json.Unmarshal(p, &ev)
			}
			if err != nil {
				a.t.Errorf("event 0x%02x %q: %v", typ, p, err)
				return
			}
			a.mu.Lock()
			a.events = append(a.events, refEvent{typ, ev})
			a.mu.Unlock()
			if a.reply != nil {
				a.reply(c, typ, ev)
			} else {
				c.answer(ev["correlation_id"].(string), "allow", nil)
			}
		}
	}
}

func (a *refAgent) record(p []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.raw = append(a.raw, slices.Clone(p))
}

// dialReverse registers with a reverse listener at addr as reverse.rs
// expects (JSON, frame 0x01) and serves the connection in JSON; it
// returns the registration answer.
func (a *refAgent) dialReverse(t *testing.T, network, addr, token string) map[string]any {
	t.Helper()
	nc, err := net.Dial(network, addr)
	require.NoError(t, err)
	caps := map[string]any{
		"agent_id": "ref-rev", "name": "ref", "version": "0.0.1", "supported_events": []int{1, 2},
		"features": map[string]any{"streaming_body": true, "websocket": false, "guardrails": false,
			"config_push": false, "metrics_export": false, "concurrent_requests": 4, "cancellation": true,
			"flow_control": false, "health_reporting": false},
		"limits": map[string]any{"max_body_size": 1024, "max_concurrency": 4, "preferred_chunk_size": 512},
	}
	reg, _ := json.Marshal(map[string]any{"protocol_version": 2, "agent_id": "ref-rev",
		"capabilities": caps, "auth_token": token, "metadata": nil})
	c := &refConn{nc: nc, enc: "json"}
	c.write(0x01, reg)
	require.NoError(t, nc.SetReadDeadline(time.Now().Add(5*time.Second)))
	typ, p, err := readRefFrame(nc)
	require.NoError(t, err)
	require.Equal(t, byte(0x02), typ)
	require.NoError(t, nc.SetReadDeadline(time.Time{}))
	var resp map[string]any
	require.NoError(t, json.Unmarshal(p, &resp))
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer nc.Close()
		a.loop(c)
	}()
	a.conns <- c
	return resp
}

// conn returns the next accepted (handshaken) connection.
func (a *refAgent) conn(t *testing.T) *refConn {
	t.Helper()
	select {
	case c := <-a.conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection")
	}
	return nil
}

func (a *refAgent) seen() []refEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events)
}

// answer writes an AgentResponse in the reference's shape: a JSON object,
// or rmp_serde's positional array.
func (c *refConn) answer(cid string, decision any, reqHeaders []any) {
	if reqHeaders == nil {
		reqHeaders = []any{}
	}
	custom := map[string]any{"correlation_id": cid}
	if c.enc == "msgpack" {
		audit := []any{[]any{}, []any{}, nil, []any{}, custom}
		c.write(0x20, c.encode([]any{2, decision, reqHeaders, []any{}, map[string]any{}, audit, false, nil, nil, nil}))
		return
	}
	c.write(0x20, c.encode(map[string]any{
		"version": 2, "decision": decision, "request_headers": reqHeaders, "response_headers": []any{},
		"routing_metadata": map[string]any{}, "needs_more": false,
		"audit": map[string]any{"tags": []any{}, "rule_ids": []any{}, "confidence": nil, "reason_codes": []any{}, "custom": custom},
	}))
}

// strct is a serde struct in c's encoding: a map, or positional.
func (c *refConn) strct(keys []string, vals ...any) any {
	if c.enc == "msgpack" {
		return vals
	}
	m := make(map[string]any, len(keys))
	for i, k := range keys {
		m[k] = vals[i]
	}
	return m
}

func (c *refConn) block(status int, body string) any {
	return map[string]any{"block": c.strct([]string{"status", "body", "headers"}, status, body, nil)}
}

func (c *refConn) redirect(url string, status int) any {
	return map[string]any{"redirect": c.strct([]string{"url", "status"}, url, status)}
}

func (c *refConn) setHeader(name, value string) any {
	return map[string]any{"set": c.strct([]string{"name", "value"}, name, value)}
}

// field reads a nested struct's field: by name (JSON), by position
// (MessagePack).
func field(v any, i int, name string) any {
	switch v := v.(type) {
	case map[string]any:
		return v[name]
	case []any:
		return v[i]
	}
	return nil
}
