package reftest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// Registration is what a reference proxy learns from a reverse dial.
type Registration struct {
	ProtocolVersion uint32          `json:"protocol_version"`
	AgentID         string          `json:"agent_id"`
	Capabilities    json.RawMessage `json:"capabilities"`
	AuthToken       *string         `json:"auth_token"`
}

// AcceptReverse is a reference-style reverse listener (reverse.rs): it
// accepts one agent dial, reads its JSON registration on type 0x01,
// validates it like validate_registration, answers on 0x02, and returns a
// JSON client over the connection (reverse connections never negotiate).
func AcceptReverse(ctx context.Context, ln net.Listener, connectionID string) (*Client, Registration, error) {
	c, err := ln.Accept()
	if err != nil {
		return nil, Registration{}, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	reg, err := readRegistration(c)
	var errMsg *string
	if err != nil {
		msg := err.Error()
		errMsg = &msg
	}
	resp, merr := Marshal(JSON, RegistrationResponse(errMsg, connectionID), false)
	if merr == nil {
		merr = WriteFrame(c, TypeHandshakeResponse, resp)
	}
	if err == nil {
		err = merr
	}
	if err != nil {
		c.Close()
		return nil, reg, err
	}
	_ = c.SetDeadline(time.Time{})
	return start(c, JSON, reg.Capabilities), reg, nil
}

func readRegistration(c net.Conn) (Registration, error) {
	var reg Registration
	typ, p, err := ReadFrame(c)
	if err != nil {
		return reg, err
	}
	if typ != TypeHandshakeRequest {
		return reg, fmt.Errorf("expected registration request (HandshakeRequest), got 0x%02x", typ)
	}
	if err := json.Unmarshal(p, &reg); err != nil {
		return reg, err
	}
	if reg.ProtocolVersion != 2 {
		return reg, fmt.Errorf("version mismatch: expected 2, got %d", reg.ProtocolVersion)
	}
	if reg.AgentID == "" {
		return reg, fmt.Errorf("agent ID cannot be empty")
	}
	return reg, nil
}

// DialReverse is a reference-style reverse agent: it dials a proxy's
// reverse listener, registers with a's capabilities, and serves events in
// JSON until the connection closes.
func (a *Agent) DialReverse(ctx context.Context, path string, token *string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	req, err := Marshal(JSON, RegistrationRequest(a.Caps, token), false)
	if err != nil {
		return err
	}
	if err := WriteFrame(c, TypeHandshakeRequest, req); err != nil {
		return err
	}
	typ, p, err := ReadFrame(c)
	if err != nil {
		return fmt.Errorf("reftest: reverse: registration: %w", err)
	}
	var resp struct {
		Success bool    `json:"success"`
		Error   *string `json:"error"`
	}
	if typ != TypeHandshakeResponse {
		return fmt.Errorf("reftest: reverse: registration answered with 0x%02x", typ)
	}
	if err := json.Unmarshal(p, &resp); err != nil {
		return fmt.Errorf("reftest: reverse: registration response: %w", err)
	}
	if !resp.Success {
		return fmt.Errorf("reftest: reverse: registration refused: %v", deref(resp.Error))
	}
	return a.run(&agentConn{c: c, enc: JSON})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
