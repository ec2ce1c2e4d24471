package httpguard

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire/events"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// kind indexes the events of an exchange.
type kind int

const (
	kindRequestHeaders kind = iota
	kindRequestBody
	kindResponseHeaders
	kindResponseBody
	kindComplete
	kindFrame
	numKinds
)

// route is one guarded route: its matcher and its chain.
type route struct {
	id, upstream string
	pattern      string
	match        func(*http.Request) bool
	agents       []agentSpec
	eventOpts    []events.Option // for request_headers: clock, route and upstream
	maxFrame     int64           // the largest websocket frame inspected
	// groups lists, per event kind, the chain's groups of agents (indexes
	// into agents) that receive it: the agents of a group run in parallel,
	// the groups in sequence.
	groups [numKinds][][]int
}

// agentSpec is one agent of a chain.
type agentSpec struct {
	id         string
	events     Events
	timeout    time.Duration
	failOpen   bool
	failStatus int
	maxBody    int64
	parallel   bool
	stats      *counters
}

// counters count an agent's failures on one route.
type counters struct {
	failedOpen, failedClosed atomic.Uint64
}

func newRoute(id, pattern string, match func(*http.Request) bool, opts []RouteOption) *route {
	rt := &route{id: id, pattern: pattern, match: match}
	for _, o := range opts {
		o.applyRoute(rt)
	}
	for _, a := range rt.agents {
		if a.events&WebSocketFrames != 0 {
			rt.maxFrame = max(rt.maxFrame, a.maxBody)
		}
	}
	for k := range numKinds {
		flag := Events(1) << k
		var cur []int
		for i, a := range rt.agents {
			if !a.parallel && len(cur) > 0 {
				rt.groups[k] = append(rt.groups[k], cur)
				cur = nil
			}
			if a.events&flag != 0 {
				cur = append(cur, i)
			}
		}
		if len(cur) > 0 {
			rt.groups[k] = append(rt.groups[k], cur)
		}
	}
	return rt
}

// eventTypes are the protocol's event types of the kinds.
var eventTypes = [numKinds]agentv2.EventType{
	kindRequestHeaders:  agentv2.EventType_EVENT_TYPE_REQUEST_HEADERS,
	kindRequestBody:     agentv2.EventType_EVENT_TYPE_REQUEST_BODY_CHUNK,
	kindResponseHeaders: agentv2.EventType_EVENT_TYPE_RESPONSE_HEADERS,
	kindResponseBody:    agentv2.EventType_EVENT_TYPE_RESPONSE_BODY_CHUNK,
	kindComplete:        agentv2.EventType_EVENT_TYPE_REQUEST_COMPLETE,
	kindFrame:           agentv2.EventType_EVENT_TYPE_WEBSOCKET_FRAME,
}

// declared returns the events agent a receives now: those configured that
// its connections declared (see [pool.Capabilities]), and request
// headers, which open the request.
func (g *Guard) declared(a *agentSpec) Events {
	c, err := g.pool.Capabilities(a.id)
	if err != nil {
		return a.events // the send will tell
	}
	ev := a.events
	for k := kindRequestBody; k < numKinds; k++ {
		if !c.Handles(eventTypes[k]) {
			ev &^= Events(1) << k
		}
	}
	return ev
}

// router finds a request's route.
type router struct {
	funcs    []*route
	mux      *http.ServeMux
	patterns map[string]*route
}

func newRouter(routes []*route) (_ *router, err error) {
	rr := &router{mux: http.NewServeMux(), patterns: map[string]*route{}}
	for _, rt := range routes {
		if rt.match != nil {
			rr.funcs = append(rr.funcs, rt)
			continue
		}
		if err := rr.register(rt); err != nil {
			return nil, err
		}
	}
	return rr, nil
}

// register adds a pattern route; ServeMux panics on an invalid or
// conflicting pattern, which is the caller's input here: an error.
func (rr *router) register(rt *route) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("httpguard: route %q: %v", rt.pattern, v)
		}
	}()
	rr.mux.Handle(rt.pattern, http.NotFoundHandler())
	rr.patterns[rt.pattern] = rt
	return nil
}

// route returns the route of r, nil if none. A request ServeMux would
// redirect (an unclean path) still gets the route of the pattern it
// matches, so a path like /admin/../admin is guarded as /admin.
func (rr *router) route(r *http.Request) *route {
	for _, rt := range rr.funcs {
		if rt.match(r) {
			return rt
		}
	}
	if len(rr.patterns) == 0 {
		return nil
	}
	if rt := rr.patterns["/"]; rt != nil && len(rr.patterns) == 1 {
		return rt // guards everything: no need to ask the mux
	}
	_, pattern := rr.mux.Handler(r)
	return rr.patterns[pattern]
}
