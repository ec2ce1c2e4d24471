package transport

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"path"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// validate applies the checks in order and, on success, reserves a slot
// under the agent's connection cap.
func (l *ReverseListener) validate(ctx context.Context, reg *agentv2.RegistrationRequest, peer net.Addr) (*slot, *rejection) {
	switch v, id := reg.GetProtocolVersion(), reg.GetAgentId(); {
	case v != ProtocolVersion:
		return nil, &rejection{code: agentwire.CodeFailedPrecondition,
			reason: fmt.Sprintf("protocol version %d not supported (want %d)", v, ProtocolVersion)}
	case id == "":
		return nil, &rejection{code: agentwire.CodeInvalidArgument, reason: "empty agent id"}
	case !validAgentID(id):
		return nil, &rejection{code: agentwire.CodeInvalidArgument,
			reason: fmt.Sprintf("agent id must be at most %d bytes of printable UTF-8", MaxAgentIDLength)}
	case !l.allowed(id):
		return nil, &rejection{code: agentwire.CodePermissionDenied, reason: "agent id not allowed"}
	}
	if rej := l.authenticate(ctx, reg, peer); rej != nil {
		return nil, rej
	}
	return l.reserve(reg)
}

func validAgentID(id string) bool {
	return len(id) <= MaxAgentIDLength && utf8.ValidString(id) &&
		!strings.ContainsFunc(id, func(r rune) bool { return !unicode.IsPrint(r) })
}

func (l *ReverseListener) allowed(id string) bool {
	return len(l.cfg.allow) == 0 || slices.ContainsFunc(l.cfg.allow, func(p string) bool {
		ok, _ := path.Match(p, id)
		return ok
	})
}

// authenticate checks the token against every configured digest in
// constant time, so neither match nor length leaks through timing.
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
