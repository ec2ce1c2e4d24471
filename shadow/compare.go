package shadow

import (
	"slices"
	"strconv"

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

// results lists every Result, for counters: a Result's index is its place.
var results = [...]Result{Agree, AllowVsBlock, BlockVsAllow, DifferentBlock, DifferentMutations, PrimaryError, ShadowError, Dropped}

// index is r's place in results.
func (r Result) index() int {
	for i, x := range results {
		if x == r {
			return i
		}
	}
	panic("shadow: unknown result " + string(r))
}

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
		if !sameStop(primary, shadow) {
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

// sameStop reports whether two decisions that stop the request are of one
// kind with every field equal (status, body, location, ...).
func sameStop(a, b *agentv2.AgentResponse) bool {
	switch {
	case a.GetBlock() != nil:
		return b.GetBlock() != nil && a.GetBlock().EqualVT(b.GetBlock())
	case a.GetRedirect() != nil:
		return b.GetRedirect() != nil && a.GetRedirect().EqualVT(b.GetRedirect())
	}
	return b.GetChallenge() != nil && a.GetChallenge().EqualVT(b.GetChallenge())
}

func sameOps(a, b []*agentv2.HeaderOp) bool {
	return slices.EqualFunc(a, b, (*agentv2.HeaderOp).EqualVT)
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
