package otel

import (
	"reflect"

	otelapi "go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Until a program calls otel.SetTracerProvider (SetMeterProvider), the
// global tracer (meter) provider is a placeholder: its spans record
// nothing and carry their parent's context, its instruments drop every
// measurement, and it delegates to the real provider once one is set.
// Starting a span and recording measurements for every event would cost
// allocations and attribute lookups for nothing, so an Interceptor built
// on a placeholder checks on each event whether it is still in place (an
// atomic load) and, while it is, skips that work.
// Nothing is lost: the caller's trace context is still written into the
// event, in-flight counts are kept apart (see agentState), and spans and
// measurements start as soon as a provider is installed.

// placeholder tells whether the provider a component was built with is
// the global placeholder, still in place.
type placeholder struct {
	// built is the provider the component was built with when it was the
	// global placeholder; nil otherwise.
	built any
	// global returns the global provider now.
	global func() any
}

func tracerPlaceholder(tp trace.TracerProvider) placeholder {
	if !isGlobalPlaceholder(tp) {
		return placeholder{}
	}
	return placeholder{built: tp, global: func() any { return otelapi.GetTracerProvider() }}
}

func meterPlaceholder(mp metric.MeterProvider) placeholder {
	if !isGlobalPlaceholder(mp) {
		return placeholder{}
	}
	return placeholder{built: mp, global: func() any { return otelapi.GetMeterProvider() }}
}

// idle reports whether the component's provider is the global placeholder
// and no provider has been installed since: the API's getters return the
// installed one from then on. (The placeholder is a pointer, so the
// comparison cannot panic.)
func (p placeholder) idle() bool {
	return p.built != nil && p.global() == p.built
}

// placeholderPkg is where the OpenTelemetry API keeps its global
// placeholder providers.
const placeholderPkg = "go.opentelemetry.io/otel/internal/global"

// isGlobalPlaceholder reports whether provider is one of the API's global
// placeholders. Their types are unexported, so they are recognised by
// their package; should that ever move, this reports false and the work
// is done as before.
func isGlobalPlaceholder(provider any) bool {
	t := reflect.TypeOf(provider)
	return t != nil && t.Kind() == reflect.Pointer && t.Elem().PkgPath() == placeholderPkg
}
