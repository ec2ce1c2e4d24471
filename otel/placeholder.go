package otel

import (
	"reflect"

	otelapi "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
)

// Until a program calls otel.SetTracerProvider, the global tracer provider
// is a placeholder: its spans record nothing and carry their parent's
// context, and it starts delegating to the real provider once one is set.
// Starting such a span for every event costs two allocations and changes
// nothing, so an Observer or Interceptor built on the placeholder checks
// on each event whether it is still in place (one atomic load) and, while
// it is, skips the span. Nothing is lost: the caller's trace context is
// still written into the event, and spans start as soon as a provider is
// installed.

// globalTracing tells whether the tracer provider a component was built
// with is the global placeholder, still in place.
type globalTracing struct {
	// placeholder is the provider the component was built with when it
	// was the global placeholder; nil otherwise.
	placeholder trace.TracerProvider
}

func newGlobalTracing(tp trace.TracerProvider) globalTracing {
	if isGlobalPlaceholder(tp) {
		return globalTracing{placeholder: tp}
	}
	return globalTracing{}
}

// idle reports whether the component's provider is the global placeholder
// and no provider has been installed since: otel.GetTracerProvider returns
// the installed one from then on.
func (g globalTracing) idle() bool {
	return g.placeholder != nil && otelapi.GetTracerProvider() == g.placeholder
}

// placeholderPkg is where the OpenTelemetry API keeps its global
// placeholder provider.
const placeholderPkg = "go.opentelemetry.io/otel/internal/global"

// isGlobalPlaceholder reports whether tp is the API's global placeholder.
// The type is unexported, so it is recognised by its package; should that
// ever move, this reports false and spans are started as before.
func isGlobalPlaceholder(tp trace.TracerProvider) bool {
	t := reflect.TypeOf(tp)
	return t != nil && t.Kind() == reflect.Pointer && t.Elem().PkgPath() == placeholderPkg
}
