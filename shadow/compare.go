package shadow

import (
	"slices"
	"strconv"

	"google.golang.org/protobuf/proto"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Result is how a shadow's answer compared with the primary's.
type Result string

// Results of a comparison (see the package doc).
const (
	Agree              Result = "agree"
	AllowVsBlock       Result = "allow_vs_block"
	BlockVsAllow       Result = "block_vs_allow"
	DifferentBlock     Result = "different_block"
	DifferentMutations Result = "different_mutations"
	PrimaryError       Result = "primary_error"
	ShadowError        Result = "shadow_error"
	// Dropped counts events not mirrored because the queue was full.
	Dropped Result = "dropped"
)

// results lists every Result, for counters.
var results = []Result{Agree, AllowVsBlock, BlockVsAllow, DifferentBlock, DifferentMutations, PrimaryError, ShadowError, Dropped}

// compare classifies the shadow's answer against the primary's.
func compare(primary, shadow *agentv2.AgentResponse, primaryErr, shadowErr error) Result {
	switch {
	case primaryErr != nil:
		return PrimaryError
	case shadowErr != nil || shadow.GetDecision() == nil:
		return ShadowError
	}
	pStop, sStop := stops(primary), stops(shadow)
	switch {
	case !pStop && sStop:
		return AllowVsBlock
	case pStop && !sStop:
		return BlockVsAllow
	case pStop:
		if !proto.Equal(stopOf(primary), stopOf(shadow)) {
			return DifferentBlock
		}
		return Agree
	}
	if !sameOps(primary.GetRequestHeaders(), shadow.GetRequestHeaders()) ||
		!sameOps(primary.GetResponseHeaders(), shadow.GetResponseHeaders()) {
		return DifferentMutations
	}
	return Agree
}

// stops reports whether r ends the request (block, redirect, challenge).
func stops(r *agentv2.AgentResponse) bool { return r.GetDecision() != nil && r.GetAllow() == nil }

// stopOf returns the decision message that stops the request, for
// comparison: its kind and every field (status, body, location, ...).
func stopOf(r *agentv2.AgentResponse) proto.Message {
	if b := r.GetBlock(); b != nil {
		return b
	}
	if rd := r.GetRedirect(); rd != nil {
		return rd
	}
	return r.GetChallenge()
}

func sameOps(a, b []*agentv2.HeaderOp) bool {
	return slices.EqualFunc(a, b, func(x, y *agentv2.HeaderOp) bool { return proto.Equal(x, y) })
}

// summary describes an answer in a few words, for the disagreement log.
func summary(r *agentv2.AgentResponse, err error) string {
	switch {
	case err != nil:
		return "error: " + err.Error()
	case r.GetBlock() != nil:
		return "block " + itoa(r.GetBlock().GetStatus())
	case r.GetRedirect() != nil:
		return "redirect " + itoa(r.GetRedirect().GetStatus()) + " " + r.GetRedirect().GetUrl()
	case r.GetChallenge() != nil:
		return "challenge " + r.GetChallenge().GetChallengeType()
	case r.GetAllow() != nil:
		if n := len(r.GetRequestHeaders()) + len(r.GetResponseHeaders()); n > 0 {
			return "allow with " + itoa(uint32(n)) + " header mutations"
		}
		return "allow"
	}
	return "no decision"
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
