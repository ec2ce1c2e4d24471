package reftest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"
)

// Fault is the misbehaviour an [Agent] applies to one event's answer.
type Fault struct {
	WrongID string        // answer under this correlation id instead (a lie)
	Twice   bool          // answer twice
	Delay   time.Duration // answer this late
	Stall   bool          // never answer
	Garbage bool          // send an undecodable 0x20 payload before the answer
	Omit    bool          // leave audit.custom.correlation_id out
}

// Agent is a reference-style agent: it serves a Unix socket the way
// uds_server.rs does (JSON handshake, first offered encoding it supports,
// pong echoing the ping, the correlation id put into audit.custom), but
// answers events concurrently so tests can misbehave per event.
// Set the fields before Serve; they are read concurrently afterwards.
type Agent struct {
	Caps      Capabilities
	Encodings []Encoding              // supported; nil means MessagePack and JSON
	Reject    string                  // non-empty: refuse every handshake with this error
	Handle    func(ev Event) Response // nil answers allow
	Faults    func(ev Event) Fault    // nil: behave
	mu        sync.Mutex              // guards the following
	raw       map[net.Conn]struct{}
	conns     map[*agentConn]struct{}
	got       []Received
	wg        sync.WaitGroup
}

// Received is one frame the agent read after the handshake.
type Received struct {
	Type    byte
	Event   Event // nil for control frames
	Payload []byte
	Err     error // decoding error, if any
}

type agentConn struct {
	c   net.Conn
	enc Encoding
	wmu sync.Mutex
}

// Serve accepts connections until ln is closed; it waits for their handlers.
func (a *Agent) Serve(ln net.Listener) error {
	defer a.wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		a.mu.Lock()
		if a.raw == nil {
			a.raw = map[net.Conn]struct{}{}
		}
		a.raw[c] = struct{}{}
		a.mu.Unlock()
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			_ = a.ServeConn(c)
			a.mu.Lock()
			delete(a.raw, c)
			a.mu.Unlock()
		}()
	}
}

// CloseConns closes every connection Serve accepted (close the listener
// first, and Serve returns once they end).
func (a *Agent) CloseConns() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for c := range a.raw {
		c.Close()
	}
}

// ServeConn runs the handshake and the event loop on c until it closes.
func (a *Agent) ServeConn(c net.Conn) error {
	defer c.Close()
	typ, p, err := ReadFrame(c)
	if err != nil {
		return err
	}
	if typ != TypeHandshakeRequest {
		return fmt.Errorf("reftest: agent: first frame 0x%02x, want a handshake", typ)
	}
	var req struct {
		SupportedEncodings []Encoding `json:"supported_encodings"`
	}
	if err := json.Unmarshal(p, &req); err != nil {
		return fmt.Errorf("reftest: agent: handshake: %w", err)
	}
	enc := a.negotiate(req.SupportedEncodings)
	var reject *string
	if a.Reject != "" {
		reject = &a.Reject
	}
	resp, err := Marshal(JSON, HandshakeResponse(a.Caps, reject, enc), false)
	if err != nil {
		return err
	}
	if err := WriteFrame(c, TypeHandshakeResponse, resp); err != nil || reject != nil {
		return err
	}
	return a.run(&agentConn{c: c, enc: enc})
}

// negotiate picks the first proxy-preferred encoding the agent supports.
func (a *Agent) negotiate(offered []Encoding) Encoding {
	supported := a.Encodings
	if supported == nil {
		supported = []Encoding{MsgPack, JSON}
	}
	for _, e := range offered {
		if slices.Contains(supported, e) {
			return e
		}
	}
	return JSON
}

// run is the event loop of an established connection (also used after a
// reverse registration, in JSON).
func (a *Agent) run(ac *agentConn) error {
	a.mu.Lock()
	if a.conns == nil {
		a.conns = map[*agentConn]struct{}{}
	}
	a.conns[ac] = struct{}{}
	a.mu.Unlock()
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		a.mu.Lock()
		delete(a.conns, ac)
		a.mu.Unlock()
	}()
	for {
		typ, p, err := ReadFrame(ac.c)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		rec := Received{Type: typ, Payload: p}
		if typ >= TypeRequestHeaders && typ <= TypeConfigure {
			rec.Event, rec.Err = DecodeEvent(ac.enc, typ, p)
		}
		a.mu.Lock()
		a.got = append(a.got, rec)
		a.mu.Unlock()
		switch {
		case typ == TypePing:
			if err := ac.write(TypePong, p); err != nil {
				return err
			}
		case rec.Event != nil:
			wg.Add(1)
			go func() {
				defer wg.Done()
				a.answer(ac, rec.Event)
			}()
		}
	}
}

// answer writes the handler's response with the configured faults.
func (a *Agent) answer(ac *agentConn, ev Event) {
	var f Fault
	if a.Faults != nil {
		f = a.Faults(ev)
	}
	if f.Stall {
		return
	}
	if f.Delay > 0 {
		time.Sleep(f.Delay)
	}
	r := Response{Version: 2}
	if a.Handle != nil {
		r = a.Handle(ev)
	}
	id := ev.Correlation()
	if f.WrongID != "" {
		id = f.WrongID
	}
	if !f.Omit {
		r = r.WithCorrelation(id)
	}
	p, err := Marshal(ac.enc, r.Value(), false)
	if err != nil {
		return
	}
	if f.Garbage {
		_ = ac.write(TypeAgentResponse, []byte{0xc1, 0xff, '}'})
	}
	_ = ac.write(TypeAgentResponse, p)
	if f.Twice {
		_ = ac.write(TypeAgentResponse, p)
	}
}

func (ac *agentConn) write(typ byte, p []byte) error {
	ac.wmu.Lock()
	defer ac.wmu.Unlock()
	return WriteFrame(ac.c, typ, p)
}

// Broadcast sends a control frame (health, metrics, flow control, config
// update) to every connected proxy, encoding v in each session's encoding.
func (a *Agent) Broadcast(typ byte, v any) error {
	a.mu.Lock()
	conns := make([]*agentConn, 0, len(a.conns))
	for ac := range a.conns {
		conns = append(conns, ac)
	}
	a.mu.Unlock()
	for _, ac := range conns {
		p, err := Marshal(ac.enc, v, false)
		if err != nil {
			return err
		}
		if err := ac.write(typ, p); err != nil {
			return err
		}
	}
	return nil
}

// Conns reports how many proxies are connected past the handshake.
func (a *Agent) Conns() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.conns)
}

// Received returns a copy of every frame read so far.
func (a *Agent) Received() []Received {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.got)
}
