package agent

import (
	"context"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// EventFunc handles one event: the server's call into the [Handler]. A nil
// response means allow; the server fills in the ids afterwards.
type EventFunc func(ctx context.Context, ev *agentv2.ProxyToAgent) (*agentv2.AgentResponse, error)

// Interceptor wraps the handling of every event (tracing, metrics,
// logging) on every transport, unary ProcessEvent calls included; a handler
// panic reaches it as a CodeInternal error. Implementations must be safe
// for concurrent use.
type Interceptor interface {
	WrapEvent(next EventFunc) EventFunc
}

// InterceptorFunc is an [Interceptor] made of a function.
type InterceptorFunc func(next EventFunc) EventFunc

// WrapEvent calls f.
func (f InterceptorFunc) WrapEvent(next EventFunc) EventFunc { return f(next) }

// WithInterceptors adds interceptors around the handler. The first one is
// the outermost: it sees the event first and the result last.
func WithInterceptors(interceptors ...Interceptor) Option {
	return optionFunc(func(c *config) { c.interceptors = append(c.interceptors, interceptors...) })
}

// chain builds the event path: interceptors around the handler call.
func (srv *Server) chain() EventFunc {
	f := EventFunc(srv.callHandler)
	for i := len(srv.cfg.interceptors) - 1; i >= 0; i-- {
		f = srv.cfg.interceptors[i].WrapEvent(f)
	}
	return f
}
