package cache

import (
	"context"
	"sync"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// flights joins concurrent misses for one request fingerprint: the first
// caller asks the agent, the others wait for its answer.
type flights struct {
	mu sync.Mutex // guards m
	m  map[Key]*flight
}

type flight struct {
	done chan struct{}
	resp *agentv2.AgentResponse // set before done closes
	err  error
}

// join returns the flight for key and whether the caller leads it (and
// must call land).
func (g *flights) join(key Key) (*flight, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.m[key]; ok {
		return f, false
	}
	if g.m == nil {
		g.m = map[Key]*flight{}
	}
	f := &flight{done: make(chan struct{})}
	g.m[key] = f
	return f, true
}

// land publishes the leader's answer and ends the flight.
func (g *flights) land(key Key, f *flight, resp *agentv2.AgentResponse, err error) {
	f.resp, f.err = resp, err
	g.mu.Lock()
	delete(g.m, key)
	g.mu.Unlock()
	close(f.done)
}

// wait waits for f to land or ctx to end.
func (f *flight) wait(ctx context.Context) error {
	select {
	case <-f.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
