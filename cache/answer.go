package cache

import (
	"slices"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// answerShape says how hits copy a stored decision: every caller gets a
// deep copy of its own, so that a caller changing its answer never
// changes another request's.
type answerShape uint8

const (
	// shapeClone: the generated CloneVT, an allocation per message.
	shapeClone answerShape = iota
	// shapeAllow: an allow copied by hand into one allocation (three
	// with more than one header operation).
	shapeAllow
)

// shapeOf picks how hits copy r; it runs once, when r is stored. The
// hand copy is used only if it equals r: a field it does not copy (one
// added to the schema later, unknown fields) sends r to CloneVT.
func shapeOf(r *agentv2.AgentResponse) answerShape {
	if r.GetAllow() == nil {
		return shapeClone
	}
	for _, ops := range [][]*agentv2.HeaderOp{r.GetRequestHeaders(), r.GetResponseHeaders()} {
		if slices.Contains(ops, nil) {
			return shapeClone
		}
	}
	if !copyAnswer(r, shapeAllow, r.GetCorrelationId()).EqualVT(r) {
		return shapeClone
	}
	return shapeAllow
}

// answer is a shapeAllow copy: the response and everything it points to
// that is not shared by every copy (strings are immutable).
type answer struct {
	resp  agentv2.AgentResponse
	allow agentv2.AgentResponse_Allow
	dec   agentv2.AllowDecision
	ptime uint64
	ops   [1]*agentv2.HeaderOp
	cells [1]opCell
}

// opCell holds one header operation's copy.
type opCell struct {
	op  agentv2.HeaderOp
	hdr agentv2.Header
	set agentv2.HeaderOp_Set
	add agentv2.HeaderOp_Add
	rm  agentv2.HeaderOp_Remove
}

// copyAnswer returns a copy of src, stored with shape, carrying the
// caller's correlation id.
func copyAnswer(src *agentv2.AgentResponse, shape answerShape, corr string) *agentv2.AgentResponse {
	if shape != shapeAllow {
		r := src.CloneVT()
		r.CorrelationId = corr
		return r
	}
	a := new(answer)
	r := &a.resp
	r.CorrelationId = corr
	a.allow.Allow = &a.dec
	r.Decision = &a.allow
	r.NeedsMore = src.NeedsMore
	r.Audit = src.Audit.CloneVT()
	r.Error = src.Error.CloneVT()
	r.Cache = src.Cache.CloneVT()
	if src.ProcessingTimeMs != nil {
		a.ptime = *src.ProcessingTimeMs
		r.ProcessingTimeMs = &a.ptime
	}
	nreq, n := len(src.RequestHeaders), len(src.RequestHeaders)+len(src.ResponseHeaders)
	ops, cells := a.ops[:], a.cells[:]
	if n > len(ops) {
		ops, cells = make([]*agentv2.HeaderOp, n), make([]opCell, n)
	}
	for i, op := range src.RequestHeaders {
		ops[i] = cells[i].copyOf(op)
	}
	for i, op := range src.ResponseHeaders {
		ops[nreq+i] = cells[nreq+i].copyOf(op)
	}
	if src.RequestHeaders != nil {
		r.RequestHeaders = ops[:nreq:nreq]
	}
	if src.ResponseHeaders != nil {
		r.ResponseHeaders = ops[nreq:n:n]
	}
	return r
}

// copyOf copies src into c and returns the copy.
func (c *opCell) copyOf(src *agentv2.HeaderOp) *agentv2.HeaderOp {
	switch o := src.Operation.(type) {
	case *agentv2.HeaderOp_Set:
		c.set.Set = c.header(o.Set)
		c.op.Operation = &c.set
	case *agentv2.HeaderOp_Add:
		c.add.Add = c.header(o.Add)
		c.op.Operation = &c.add
	case *agentv2.HeaderOp_Remove:
		c.rm.Remove = o.Remove
		c.op.Operation = &c.rm
	}
	return &c.op
}

func (c *opCell) header(h *agentv2.Header) *agentv2.Header {
	if h == nil {
		return nil
	}
	c.hdr.Name, c.hdr.Value = h.Name, h.Value
	return &c.hdr
}
