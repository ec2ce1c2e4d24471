package httpguard

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"slices"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Audit is what the agents of a request's chain reported about it, merged
// in chain order, and what the guard did.
type Audit struct {
	CorrelationID string
	RouteID       string
	Tags          []string
	RuleIDs       []string
	ReasonCodes   []string
	// Custom holds the agents' custom fields; a later agent's value for a
	// key replaces an earlier one's.
	Custom map[string]string
	// DecidedBy is the agent whose block, redirect or challenge (or whose
	// failure, failing closed) ended the request; empty if none did.
	DecidedBy string
	// FailedOpen lists the agents that failed and were passed over.
	FailedOpen []string
}

type exchangeKey struct{}

// AuditFrom returns a copy of the audit of the guarded request whose
// context (or a context derived from it) is ctx; false outside a guarded
// request. Response events can still add to it while next runs.
func AuditFrom(ctx context.Context) (Audit, bool) {
	x, ok := ctx.Value(exchangeKey{}).(*exchange)
	if !ok {
		return Audit{}, false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	a := x.audit
	a.Tags, a.RuleIDs, a.ReasonCodes = slices.Clone(a.Tags), slices.Clone(a.RuleIDs), slices.Clone(a.ReasonCodes)
	a.Custom, a.FailedOpen = maps.Clone(a.Custom), slices.Clone(a.FailedOpen)
	return a, true
}

// ReportUpstreamError records that the upstream of the guarded request of
// ctx failed: the agents then see the request cancelled with
// CANCEL_REASON_UPSTREAM_ERROR. Errors the guard caused (ErrBlocked) are
// not upstream errors.
func ReportUpstreamError(ctx context.Context, err error) {
	x, ok := ctx.Value(exchangeKey{}).(*exchange)
	if !ok || err == nil || errors.Is(err, ErrBlocked) || errors.Is(err, ErrBodyLimit) || errors.Is(err, errFinished) {
		return
	}
	x.mu.Lock()
	if x.upstreamErr == nil {
		x.upstreamErr = err
	}
	x.mu.Unlock()
}

// ProxyErrorHandler is an httputil.ReverseProxy ErrorHandler for guarded
// proxies: it reports the error ([ReportUpstreamError]) and answers 502.
// When an agent ended the request, the guard's answer replaces the 502.
func ProxyErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	ReportUpstreamError(r.Context(), err)
	w.WriteHeader(http.StatusBadGateway)
}

// mergeAudit adds m to a.
func mergeAudit(a *Audit, m *agentv2.AuditMetadata) {
	if m == nil {
		return
	}
	a.Tags = append(a.Tags, m.GetTags()...)
	a.RuleIDs = append(a.RuleIDs, m.GetRuleIds()...)
	a.ReasonCodes = append(a.ReasonCodes, m.GetReasonCodes()...)
	if len(m.GetCustom()) > 0 {
		if a.Custom == nil {
			a.Custom = make(map[string]string, len(m.GetCustom()))
		}
		maps.Copy(a.Custom, m.GetCustom())
	}
}

// log logs the request's audit when there is something to say.
func (x *exchange) log(reason agentv2.CancelReason) {
	x.mu.Lock()
	a, status := x.audit, x.status
	x.mu.Unlock()
	if a.DecidedBy == "" && len(a.FailedOpen) == 0 && len(a.Tags) == 0 && len(a.RuleIDs) == 0 &&
		len(a.ReasonCodes) == 0 && len(a.Custom) == 0 && reason == agentv2.CancelReason_CANCEL_REASON_UNSPECIFIED {
		return
	}
	l := x.g.cfg.logger
	level := slog.LevelInfo
	if !l.Enabled(x.Context, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("correlation_id", a.CorrelationID), slog.String("route", a.RouteID), slog.Int("status", status),
	}
	if a.DecidedBy != "" {
		attrs = append(attrs, slog.String("decided_by", a.DecidedBy))
	}
	if reason != agentv2.CancelReason_CANCEL_REASON_UNSPECIFIED {
		attrs = append(attrs, slog.String("ended", reason.String()))
	}
	for _, f := range []struct {
		k string
		v []string
	}{{"tags", a.Tags}, {"rule_ids", a.RuleIDs}, {"reason_codes", a.ReasonCodes}, {"failed_open", a.FailedOpen}} {
		if len(f.v) > 0 {
			attrs = append(attrs, slog.Any(f.k, f.v))
		}
	}
	if len(a.Custom) > 0 {
		attrs = append(attrs, slog.Any("custom", a.Custom))
	}
	l.LogAttrs(context.WithoutCancel(x.Context), level, "httpguard: request", attrs...)
}
