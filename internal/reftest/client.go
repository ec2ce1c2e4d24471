package reftest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Reply is an agent response as a reference proxy sees it.
type Reply struct {
	Response Response
	Err      error // the payload did not decode
}

// Frame is a control frame the client read (health, metrics, flow control,
// config update, pong, or anything unexpected).
type Frame struct {
	Type    byte
	Payload []byte
}

// Client is a reference-style proxy client: it speaks like uds.rs
// AgentClientV2Uds — JSON handshake offering encodings, events under the
// negotiated encoding, responses routed by audit.custom.correlation_id and
// dropped when nothing waits for that id. Safe for concurrent use.
type Client struct {
	conn net.Conn
	Enc  Encoding        // negotiated encoding
	Caps json.RawMessage // the handshake response's capabilities
	// DupKeys sends MessagePack events byte-exact with uds.rs (correlation_id
	// twice in events that carry their own).
	DupKeys bool

	wmu     sync.Mutex
	mu      sync.Mutex // guards pending, dropped
	pending map[string]chan Reply
	dropped []Reply
	control chan Frame
	done    chan struct{}
	readErr error
}

// Dial connects to a Unix socket and runs the handshake offering encs
// (uds.rs with binary-uds offers MessagePack, JSON).
func Dial(ctx context.Context, path string, encs ...Encoding) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	cl, err := Handshake(ctx, c, encs...)
	if err != nil {
		c.Close()
		return nil, err
	}
	return cl, nil
}

// Handshake runs the client's handshake on an open connection.
func Handshake(ctx context.Context, c net.Conn, encs ...Encoding) (*Client, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
		defer c.SetDeadline(time.Time{})
	}
	req, err := Marshal(JSON, HandshakeRequest("zentinel-proxy", "0.6.20", encs...), false)
	if err != nil {
		return nil, err
	}
	if err := WriteFrame(c, TypeHandshakeRequest, req); err != nil {
		return nil, err
	}
	typ, p, err := ReadFrame(c)
	if err != nil {
		return nil, fmt.Errorf("reftest: client: handshake: %w", err)
	}
	if typ != TypeHandshakeResponse {
		return nil, fmt.Errorf("reftest: client: handshake answered with 0x%02x", typ)
	}
	var resp struct {
		Success      bool            `json:"success"`
		Error        *string         `json:"error"`
		Encoding     Encoding        `json:"encoding"`
		Capabilities json.RawMessage `json:"capabilities"`
	}
	if err := json.Unmarshal(p, &resp); err != nil {
		return nil, fmt.Errorf("reftest: client: handshake response: %w", err)
	}
	if !resp.Success {
		msg := "unknown handshake error"
		if resp.Error != nil {
			msg = *resp.Error
		}
		return nil, fmt.Errorf("reftest: client: handshake refused: %s", msg)
	}
	if resp.Encoding == "" {
		resp.Encoding = JSON // serde default
	}
	return start(c, resp.Encoding, resp.Capabilities), nil
}

func start(c net.Conn, enc Encoding, caps json.RawMessage) *Client {
	cl := &Client{conn: c, Enc: enc, Caps: caps, pending: map[string]chan Reply{},
		control: make(chan Frame, 64), done: make(chan struct{})}
	go cl.read()
	return cl
}

// read routes responses by correlation id, like uds.rs's reader task.
func (cl *Client) read() {
	defer close(cl.done)
	for {
		typ, p, err := ReadFrame(cl.conn)
		if err != nil {
			cl.mu.Lock()
			cl.readErr = err
			cl.mu.Unlock()
			return
		}
		if typ != TypeAgentResponse {
			select {
			case cl.control <- Frame{typ, p}:
			default: // nobody reads control frames: drop, like uds.rs's trace
			}
			continue
		}
		r, id, err := DecodeResponse(cl.Enc, p)
		cl.mu.Lock()
		ch := cl.pending[id]
		delete(cl.pending, id)
		if ch == nil {
			cl.dropped = append(cl.dropped, Reply{r, err})
		}
		cl.mu.Unlock()
		if ch != nil {
			ch <- Reply{r, err}
		}
	}
}

// Send sends ev and waits for the response carrying its correlation id.
func (cl *Client) Send(ctx context.Context, ev Event) (Response, error) {
	p, err := EventPayload(cl.Enc, ev, cl.DupKeys)
	if err != nil {
		return Response{}, err
	}
	return cl.SendRaw(ctx, ev.Type(), ev.Correlation(), p)
}

// SendRaw sends a prepared payload as frame typ and waits for the response
// routed to id.
func (cl *Client) SendRaw(ctx context.Context, typ byte, id string, p []byte) (Response, error) {
	ch := make(chan Reply, 1)
	cl.mu.Lock()
	cl.pending[id] = ch
	cl.mu.Unlock()
	if err := cl.Write(typ, p); err != nil {
		cl.forget(id)
		return Response{}, err
	}
	select {
	case r := <-ch:
		return r.Response, r.Err
	case <-cl.done:
		cl.forget(id)
		return Response{}, fmt.Errorf("reftest: client: connection closed: %w", cl.err())
	case <-ctx.Done():
		cl.forget(id)
		return Response{}, ctx.Err()
	}
}

func (cl *Client) forget(id string) {
	cl.mu.Lock()
	delete(cl.pending, id)
	cl.mu.Unlock()
}

func (cl *Client) err() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.readErr
}

// Write sends one raw frame.
func (cl *Client) Write(typ byte, p []byte) error {
	cl.wmu.Lock()
	defer cl.wmu.Unlock()
	return WriteFrame(cl.conn, typ, p)
}

// Cancel sends uds.rs's cancel (JSON in every session) and forgets the id.
func (cl *Client) Cancel(id string, reason int, ts uint64) error {
	p, err := Marshal(JSON, Cancel(id, reason, ts), true)
	if err != nil {
		return err
	}
	cl.forget(id)
	return cl.Write(TypeCancel, p)
}

// Ping sends uds.rs's ping (JSON in every session); the pong arrives on
// [Client.Control].
func (cl *Client) Ping(seq, ts uint64) error {
	p, err := Marshal(JSON, Ping(seq, ts), true)
	if err != nil {
		return err
	}
	return cl.Write(TypePing, p)
}

// Control delivers frames other than agent responses.
func (cl *Client) Control() <-chan Frame { return cl.control }

// Dropped returns responses that matched no waiting event.
func (cl *Client) Dropped() []Reply {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return append([]Reply(nil), cl.dropped...)
}

// Done is closed when the connection's reader ends.
func (cl *Client) Done() <-chan struct{} { return cl.done }

// Close closes the connection and waits for the reader.
func (cl *Client) Close() error {
	err := cl.conn.Close()
	<-cl.done
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
