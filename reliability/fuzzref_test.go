package reliability_test

import (
	"encoding/binary"
	"fmt"

	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire/refenc"
	"github.com/agentwire/agentwire/transport"
)

// refRegistration reads a reference registration frame as the listener
// must: one whole frame within MaxRegistrationFrame, JSON inside.
func refRegistration(data []byte) (*agentv2.RegistrationRequest, error) {
	n := int(binary.BigEndian.Uint32(data))
	switch {
	case n == 0:
		return nil, codec.ErrZeroLength
	case n > transport.MaxRegistrationFrame:
		return nil, codec.ErrFrameTooLarge
	case len(data) < 4+n:
		return nil, codec.ErrTruncated
	}
	return refenc.RegistrationIn(data[agentv2.FrameHeaderSize : 4+n])
}

// registrationAnswer reads the listener's first frame: a reference
// RegistrationResponse (0x02, JSON) if ref, else our registration_response.
func registrationAnswer(out []byte, ref bool) (*agentv2.RegistrationResponse, error) {
	if !ref {
		var answer agentv2.ProxyToAgent
		if _, err := firstFrame(out, &answer, agentv2.IsProxyToAgentFrame, 0, false); err != nil {
			return nil, err
		}
		if answer.GetRegistrationResponse() == nil {
			return nil, fmt.Errorf("got %v", &answer)
		}
		return answer.GetRegistrationResponse(), nil
	}
	if len(out) < agentv2.FrameHeaderSize {
		return nil, codec.ErrTruncated
	}
	n := int(binary.BigEndian.Uint32(out))
	if n == 0 || len(out) < 4+n || out[4] != 0x02 {
		return nil, fmt.Errorf("not a reference registration response: % x", out[:min(len(out), 16)])
	}
	return refenc.RegistrationResponseIn(out[agentv2.FrameHeaderSize : 4+n])
}

// refRegistrationFrame is a reference agent's registration (0x01, JSON).
func refRegistrationFrame(v uint32, id, token string) []byte {
	b, err := refenc.AppendRegistration(nil, &agentv2.RegistrationRequest{ProtocolVersion: v, AgentId: id, AuthToken: token})
	if err != nil {
		panic(err)
	}
	return b
}
