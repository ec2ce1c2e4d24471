// Package events builds the events a proxy sends to agents, from net/http
// values: the proxy side's counterpart of the agent package's decision
// builders (agent.Allow, agent.Block, ...).
//
//	ev := events.RequestHeaders(r, correlationID)
//	resp, err := p.Send(ctx, "waf", ev)
//
// Every builder returns a complete *agentv2.ProxyToAgent envelope, ready
// for pool.Pool.Send or transport.Conn.Send; the event id is assigned when
// it is sent. Builders copy what they read from the request, never keep
// it, and are safe for concurrent use.
package events
