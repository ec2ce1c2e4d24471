package caddyagentwire

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentwire/agentwire/httpguard"
	"github.com/agentwire/agentwire/pool"
)

// Metrics of the agentwire handlers of a config, read from the pools' and
// guards' stats when Caddy's metrics are scraped.
var (
	descRequests = prometheus.NewDesc("caddy_agentwire_agent_events_total",
		"Events sent to the agent.", []string{"agent", "endpoint"}, nil)
	descErrors = prometheus.NewDesc("caddy_agentwire_agent_errors_total",
		"Events sent to the agent that failed.", []string{"agent", "endpoint"}, nil)
	descInFlight = prometheus.NewDesc("caddy_agentwire_agent_in_flight",
		"Events waiting for the agent's answer.", []string{"agent", "endpoint"}, nil)
	descConns = prometheus.NewDesc("caddy_agentwire_agent_connections",
		"Connections to the agent, by state.", []string{"agent", "endpoint", "state"}, nil)
	descBreaker = prometheus.NewDesc("caddy_agentwire_agent_breaker_open",
		"1 while the agent's circuit breaker is not closed.", []string{"agent", "endpoint"}, nil)
	descFailures = prometheus.NewDesc("caddy_agentwire_failures_total",
		"Requests on which an agent failed, by failure mode.", []string{"route", "agent", "mode"}, nil)
	descRegistrations = prometheus.NewDesc("caddy_agentwire_reverse_registrations_total",
		"Registrations on the reverse listener, admitted or rejected.", []string{"address", "result"}, nil)
)

// collector reports the handlers of one config's metrics registry.
// Handlers and pools met more than once (shared pools, equal ids) are
// summed, so series stay unique.
type collector struct {
	mu       sync.Mutex // guards handlers
	handlers map[*Handler]*sharedPool
}

// collectors maps each config's registry to its collector.
var collectors = struct {
	sync.Mutex
	m map[*prometheus.Registry]*collector
}{m: map[*prometheus.Registry]*collector{}}

// registerMetrics adds h, over p, to reg's collector.
func registerMetrics(reg *prometheus.Registry, h *Handler, p *sharedPool) error {
	collectors.Lock()
	defer collectors.Unlock()
	c := collectors.m[reg]
	if c == nil {
		c = &collector{handlers: map[*Handler]*sharedPool{}}
		if err := reg.Register(c); err != nil {
			return err
		}
		collectors.m[reg] = c
	}
	c.mu.Lock()
	c.handlers[h] = p
	c.mu.Unlock()
	return nil
}

// unregisterMetrics removes h; the registry's last handler drops it.
func unregisterMetrics(reg *prometheus.Registry, h *Handler) {
	collectors.Lock()
	defer collectors.Unlock()
	c := collectors.m[reg]
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.handlers, h)
	empty := len(c.handlers) == 0
	c.mu.Unlock()
	if empty {
		reg.Unregister(c)
		delete(collectors.m, reg)
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descErrors, descInFlight, descConns, descBreaker, descFailures, descRegistrations} {
		ch <- d
	}
}

type agentKey struct{ agent, endpoint string }

type agentSums struct {
	events, errors, inFlight, breakerOpen float64
	conns                                 map[string]float64
}

type failureKey struct{ route, agent, mode string }

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	pools := map[*sharedPool]string{} // to its reverse address
	var guards []*httpguard.Guard
	for h, p := range c.handlers {
		pools[p] = ""
		if h.Reverse != nil {
			pools[p] = h.Reverse.Address
		}
		guards = append(guards, h.guard)
	}
	c.mu.Unlock()
	agents := map[agentKey]*agentSums{}
	for p, addr := range pools {
		if l := p.listener(); l != nil {
			st := l.Stats()
			ch <- prometheus.MustNewConstMetric(descRegistrations, prometheus.CounterValue, float64(st.Admitted), addr, "admitted")
			ch <- prometheus.MustNewConstMetric(descRegistrations, prometheus.CounterValue, float64(st.Rejected), addr, "rejected")
		}
		for _, st := range p.Stats() {
			k := agentKey{st.ID, st.Endpoint}
			if k.endpoint == "" {
				k.endpoint = ReverseEndpoint // its connections came in
			}
			s := agents[k]
			if s == nil {
				s = &agentSums{conns: map[string]float64{}}
				agents[k] = s
			}
			s.events += float64(st.Requests)
			s.errors += float64(st.Errors)
			s.inFlight += float64(st.InFlight)
			if st.Breaker != pool.BreakerClosed {
				s.breakerOpen = 1
			}
			for _, cs := range st.Conns {
				s.conns[cs.State.String()]++
			}
		}
	}
	for k, s := range agents {
		ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, s.events, k.agent, k.endpoint)
		ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, s.errors, k.agent, k.endpoint)
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, s.inFlight, k.agent, k.endpoint)
		ch <- prometheus.MustNewConstMetric(descBreaker, prometheus.GaugeValue, s.breakerOpen, k.agent, k.endpoint)
		for state, n := range s.conns {
			ch <- prometheus.MustNewConstMetric(descConns, prometheus.GaugeValue, n, k.agent, k.endpoint, state)
		}
	}
	failures := map[failureKey]float64{}
	for _, g := range guards {
		for _, st := range g.Stats() {
			failures[failureKey{st.Route, st.Agent, "open"}] += float64(st.FailedOpen)
			failures[failureKey{st.Route, st.Agent, "closed"}] += float64(st.FailedClosed)
		}
	}
	for k, n := range failures {
		ch <- prometheus.MustNewConstMetric(descFailures, prometheus.CounterValue, n, k.route, k.agent, k.mode)
	}
}
