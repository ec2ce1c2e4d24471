package wire

import (
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// TestFlowRules: as what waits on an agent rises and falls, the agent
// wants a pause from the limit until it is back down to the resume mark,
// and the proxy, applying the signals the agent sends on each change, holds
// back exactly what the agent paused: the connection for a signal without
// a correlation id, one request otherwise.
func TestFlowRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		h     Hysteresis
		corr  *string // nil: the connection
		waits []int   // what waits after each event
		want  []bool  // the pause wanted then
	}{{
		name:  "connection: pause at the limit, resume at three quarters",
		h:     ConnectionHysteresis(8),
		waits: []int{1, 7, 8, 9, 7, 6, 5, 7, 8, 0},
		want:  []bool{false, false, true, true, true, false, false, false, true, false},
	}, {
		name:  "connection of one: resume when nothing is pending",
		h:     ConnectionHysteresis(1),
		waits: []int{0, 1, 1, 0, 1},
		want:  []bool{false, true, true, false, true},
	}, {
		name:  "request: pause at the limit, resume at half",
		h:     RequestHysteresis(4),
		corr:  proto.String("req-1"),
		waits: []int{3, 4, 3, 2, 3, 5, 1},
		want:  []bool{false, true, true, false, false, true, false},
	}, {
		name:  "request limit 0: never",
		h:     RequestHysteresis(0),
		corr:  proto.String("req-1"),
		waits: []int{0, 1, 1000},
		want:  []bool{false, false, false},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var (
				agent bool     // the pause the agent wants
				proxy PauseSet // what the proxy holds back
				got   []bool
			)
			for _, n := range tt.waits {
				next := tt.h.Next(agent, n)
				if next != agent {
					sig := FlowSignal(tt.corr, next, 1).GetFlowControl()
					if act := proxy.Apply(sig); act != sig.GetAction() {
						t.Fatalf("Apply(%v) = %v", sig, act)
					}
				}
				agent = next
				got = append(got, agent)
				corr := ""
				if tt.corr != nil {
					corr = *tt.corr
				}
				if proxy.Paused(corr) != agent || proxy.Any() != agent || proxy.Connection() != (agent && tt.corr == nil) {
					t.Fatalf("after %d waiting the agent wants a pause: %v; the proxy: paused %v, any %v, connection %v",
						n, agent, proxy.Paused(corr), proxy.Any(), proxy.Connection())
				}
				if tt.corr != nil && proxy.Paused("req-other") {
					t.Fatal("a request's pause holds back another request")
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("pauses wanted %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPauseSet: the proxy's side alone: a connection-wide pause holds back
// every request and only the agent lifts it; cancelled requests' pauses
// are lifted; the set is bounded; unknown actions change nothing.
func TestPauseSet(t *testing.T) {
	t.Parallel()
	sig := func(a agentv2.FlowAction, corr *string) *agentv2.FlowControlSignal {
		return &agentv2.FlowControlSignal{Action: a, CorrelationId: corr}
	}
	pause, resume := agentv2.FlowAction_FLOW_ACTION_PAUSE, agentv2.FlowAction_FLOW_ACTION_RESUME

	var p PauseSet
	if p.Any() || p.Paused("") || p.Paused("a") {
		t.Fatal("the zero PauseSet holds something back")
	}
	if act := p.Apply(sig(agentv2.FlowAction_FLOW_ACTION_UNSPECIFIED, nil)); act != agentv2.FlowAction_FLOW_ACTION_UNSPECIFIED || p.Any() {
		t.Fatalf("an unknown action: %v, any %v", act, p.Any())
	}
	if act := p.Apply(nil); act != agentv2.FlowAction_FLOW_ACTION_UNSPECIFIED || p.Any() {
		t.Fatalf("no signal: %v, any %v", act, p.Any())
	}

	p.Apply(sig(pause, nil))
	p.Lift("")
	if !p.Paused("") || !p.Paused("a") {
		t.Fatal("lifting the requests' pauses lifted the connection's")
	}
	p.Apply(sig(resume, nil))
	if p.Any() {
		t.Fatal("RESUME without a correlation id left a pause")
	}

	p.Apply(sig(pause, proto.String("a")))
	p.Apply(sig(pause, proto.String("b")))
	if p.Paused("") || !p.Paused("a") || !p.Paused("b") {
		t.Fatal("per-request pauses")
	}
	p.Lift("a")
	if p.Paused("a") || !p.Paused("b") {
		t.Fatal("lifting a lifted the wrong pauses")
	}
	p.Apply(sig(resume, proto.String("a"))) // nothing to resume
	p.Lift("")
	if p.Any() {
		t.Fatal("Lift(\"\") left a request paused")
	}

	for i := range MaxPausedRequests + 10 {
		if act := p.Apply(sig(pause, proto.String(fmt.Sprint(i)))); act != pause {
			t.Fatalf("PAUSE %d: %v", i, act)
		}
	}
	if !p.Paused(fmt.Sprint(MaxPausedRequests-1)) || p.Paused(fmt.Sprint(MaxPausedRequests)) {
		t.Fatalf("paused requests are not bounded at %d", MaxPausedRequests)
	}
}
