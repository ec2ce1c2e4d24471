package transport

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"path"
	"unicode"
	"unicode/utf8"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// validate applies the checks in order and, on success, reserves a slot
// under the agent's connection cap.
func (l *ReverseListener) validate(ctx context.Context, reg *agentv2.RegistrationRequest, peer net.Addr) (*slot, *rejection) {
	if v := reg.GetProtocolVersion(); v != ProtocolVersion {
		return nil, &rejection{code: agentwire.CodeFailedPrecondition,
			reason: fmt.Sprintf("protocol version %d not supported (want %d)", v, ProtocolVersion)}
	}
	id := reg.GetAgentId()
	if id == "" {
		return nil, &rejection{code: agentwire.CodeInvalidArgument, reason: "empty agent id"}
	}
	if !validAgentID(id) {
		return nil, &rejection{code: agentwire.CodeInvalidArgument,
			reason: fmt.Sprintf("agent id must be at most %d bytes of printable UTF-8", MaxAgentIDLength)}
	}
	if !l.allowed(id) {
		return nil, &rejection{code: agentwire.CodePermissionDenied, reason: "agent id not allowed"}
	}
	if rej := l.authenticate(ctx, reg, peer); rej != nil {
		return nil, rej
	}
	return l.reserve(reg)
}

func validAgentID(id string) bool {
	if len(id) > MaxAgentIDLength || !utf8.ValidString(id) {
		return false
	}
	for _, r := range id {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func (l *ReverseListener) allowed(id string) bool {
	if len(l.cfg.allow) == 0 {
		return true
	}
	for _, p := range l.cfg.allow {
		if ok, _ := path.Match(p, id); ok {
			return true
		}
	}
	return false
}

// authenticate checks the token. Configured tokens are stored as SHA-256
// digests and every one is compared in constant time, so neither the
// comparison nor the token's length leaks through timing.
func (l *ReverseListener) authenticate(ctx context.Context, reg *agentv2.RegistrationRequest, peer net.Addr) *rejection {
	if l.cfg.noAuth {
		return nil
	}
	token := reg.GetAuthToken()
	if token == "" {
		return &rejection{code: agentwire.CodeUnauthenticated, reason: "auth token required"}
	}
	candidates, own := l.cfg.agentTokens[reg.GetAgentId()]
	if !own {
		candidates = l.cfg.globalTokens
	}
	sum := sha256.Sum256([]byte(token))
	match := 0
	for i := range candidates {
		match |= subtle.ConstantTimeCompare(sum[:], candidates[i][:])
	}
	if match == 1 {
		return nil
	}
	if l.cfg.verifier == nil {
		return &rejection{code: agentwire.CodeUnauthenticated, reason: "invalid auth token"}
	}
	if err := l.cfg.verifier(ctx, reg, peer); err != nil {
		code := agentwire.CodeUnauthenticated
		if c := agentwire.CodeOf(err); c == agentwire.CodePermissionDenied {
			code = c
		}
		return &rejection{code: code, reason: "auth token rejected", detail: err}
	}
	return nil
}
