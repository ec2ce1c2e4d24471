package httpguard

import (
	"fmt"
	"io"
	"net/http"

	"golang.org/x/net/http/httpguts"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// ChallengeResponder answers the client when an agent decided on a
// challenge (a captcha, a JavaScript check). It must write a response.
type ChallengeResponder func(w http.ResponseWriter, r *http.Request, c *agentv2.ChallengeDecision)

// DefaultChallenge answers 403 with the challenge type in the
// X-Agentwire-Challenge header and a short text body; parameters are not
// shown to the client.
func DefaultChallenge(w http.ResponseWriter, _ *http.Request, c *agentv2.ChallengeDecision) {
	w.Header().Set("X-Agentwire-Challenge", c.GetChallengeType())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusForbidden)
	_, _ = fmt.Fprintf(w, "challenge required: %s\n", c.GetChallengeType())
}

// writeDecision answers the client with a block, redirect or challenge and
// returns the status written (0 when the challenge responder's is unknown).
func writeDecision(w http.ResponseWriter, r *http.Request, resp *agentv2.AgentResponse, challenge ChallengeResponder) int {
	h := w.Header()
	switch d := resp.GetDecision().(type) {
	case *agentv2.AgentResponse_Block:
		b := d.Block
		for _, hd := range b.GetHeaders() {
			if validHeader(hd.GetName(), hd.GetValue()) {
				h.Add(hd.GetName(), hd.GetValue())
			}
		}
		status := int(b.GetStatus())
		if status < 200 || status > 599 {
			status = http.StatusForbidden
		}
		if b.Body != nil && h.Get("Content-Type") == "" {
			h.Set("Content-Type", "text/plain; charset=utf-8")
		}
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, b.GetBody())
		return status
	case *agentv2.AgentResponse_Redirect:
		status := int(d.Redirect.GetStatus())
		if status < 300 || status > 399 {
			status = http.StatusFound
		}
		if !httpguts.ValidHeaderFieldValue(d.Redirect.GetUrl()) {
			status = http.StatusBadGateway
			w.WriteHeader(status)
			return status
		}
		h.Set("Location", d.Redirect.GetUrl())
		w.WriteHeader(status)
		return status
	case *agentv2.AgentResponse_Challenge:
		challenge(w, r, d.Challenge)
		return http.StatusForbidden
	}
	return 0
}

// applyRequestOps applies header operations to the request next will see;
// a Host operation sets r.Host, which is what net/http sends, and removing
// Content-Length lets body mutations change the length (the body then
// goes upstream chunked).
func applyRequestOps(r *http.Request, ops []*agentv2.HeaderOp) {
	for _, op := range ops {
		if rm, ok := op.GetOperation().(*agentv2.HeaderOp_Remove); ok && http.CanonicalHeaderKey(rm.Remove) == "Content-Length" {
			r.ContentLength = -1
		}
		if set := op.GetSet(); set != nil && http.CanonicalHeaderKey(set.GetName()) == "Host" {
			if validHeader("Host", set.GetValue()) {
				r.Host = set.GetValue()
			}
			continue
		}
		applyOp(r.Header, op)
	}
}

// applyOps applies header operations in order.
func applyOps(h http.Header, ops []*agentv2.HeaderOp) {
	for _, op := range ops {
		applyOp(h, op)
	}
}

// applyOp applies one operation; one with an invalid name or value is
// ignored, so an agent cannot make the response or the upstream request
// unwritable.
func applyOp(h http.Header, op *agentv2.HeaderOp) {
	switch o := op.GetOperation().(type) {
	case *agentv2.HeaderOp_Set:
		if validHeader(o.Set.GetName(), o.Set.GetValue()) {
			h.Set(o.Set.GetName(), o.Set.GetValue())
		}
	case *agentv2.HeaderOp_Add:
		if validHeader(o.Add.GetName(), o.Add.GetValue()) {
			h.Add(o.Add.GetName(), o.Add.GetValue())
		}
	case *agentv2.HeaderOp_Remove:
		h.Del(o.Remove)
	}
}

func validHeader(name, value string) bool {
	return httpguts.ValidHeaderFieldName(name) && httpguts.ValidHeaderFieldValue(value)
}
