package transport

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Agents' log lines go to the proxy's log, so each connection passes at
// most a rate of lines (a token bucket) and cuts each line to a size.
const (
	// DefaultAgentLogRate is how many agent log lines per second one
	// connection writes, with bursts of as many.
	DefaultAgentLogRate = 100
	// DefaultAgentLogBytes caps the message of one agent log line, and
	// the message and fields together at four times as much.
	DefaultAgentLogBytes = 4 << 10
	// maxLogFields caps the fields of one line.
	maxLogFields = 32
)

// WithAgentLogLimit sets how many log lines per second (with bursts of as
// many) an agent may write into the proxy's log on one connection, and the
// bytes its message is cut to (fields: four times that); defaults
// [DefaultAgentLogRate] and [DefaultAgentLogBytes]. Dropped lines are
// counted ([Status].LogsDropped) and reported once lines pass again.
// perSecond <= 0 drops every agent log line.
func WithAgentLogLimit(perSecond, maxBytes int) Option {
	return optionFunc(func(c *config) { c.logRate, c.logBytes = perSecond, maxBytes })
}

// logLimiter is one connection's token bucket; only the reader uses it,
// except dropped.
type logLimiter struct {
	tokens  float64
	last    time.Time
	dropped atomic.Uint64
	// unreported counts the drops not yet reported in the proxy's log.
	unreported uint64
}

// allow takes a token if one is left at now.
func (l *logLimiter) allow(now time.Time, rate int) bool {
	if rate <= 0 {
		return false
	}
	if l.last.IsZero() {
		l.tokens = float64(rate)
	} else if d := now.Sub(l.last); d > 0 {
		l.tokens = min(float64(rate), l.tokens+d.Seconds()*float64(rate))
	}
	l.last = now
	if l.tokens < 1 {
		return false
	}
	l.tokens--
	return true
}

// VisitLog writes an agent's log line to the proxy's log, within the limits.
func (s *session) VisitLog(_ *agentv2.AgentToProxy, l *agentv2.LogMessage) error {
	lim := &s.logs
	if !lim.allow(s.cfg.now(), s.cfg.logRate) {
		lim.dropped.Add(1)
		lim.unreported++
		return nil
	}
	if n := lim.unreported; n > 0 {
		lim.unreported = 0
		s.log(slog.LevelWarn, "agent logs faster than the limit; lines dropped",
			slog.Uint64("dropped", n), slog.Int("per_second", s.cfg.logRate))
	}
	level := logLevels[l.GetLevel()] // info if not listed
	if !s.cfg.logger.Enabled(context.Background(), level) {
		return nil
	}
	budget := 4 * s.cfg.logBytes
	msg, cut := clip(l.GetMessage(), s.cfg.logBytes)
	budget -= len(msg)
	attrs := make([]slog.Attr, 0, min(len(l.GetFields()), maxLogFields)+2)
	if l.CorrelationId != nil {
		corr, c := clip(l.GetCorrelationId(), 256)
		cut = cut || c
		attrs = append(attrs, slog.String("correlation_id", corr))
	}
	fields := 0
	for k, v := range l.GetFields() {
		if fields == maxLogFields || budget <= 0 {
			cut = true
			break
		}
		k, ck := clip(k, 128)
		v, cv := clip(v, budget-len(k))
		cut = cut || ck || cv
		budget -= len(k) + len(v)
		attrs = append(attrs, slog.String(k, v))
		fields++
	}
	if cut {
		attrs = append(attrs, slog.String("truncated", "agent log line cut to "+strconv.Itoa(s.cfg.logBytes)+" bytes"))
	}
	s.log(level, msg, attrs...)
	return nil
}

var logLevels = map[agentv2.LogLevel]slog.Level{
	agentv2.LogLevel_LOG_LEVEL_DEBUG: slog.LevelDebug,
	agentv2.LogLevel_LOG_LEVEL_WARN:  slog.LevelWarn,
	agentv2.LogLevel_LOG_LEVEL_ERROR: slog.LevelError,
}

// log writes a line about the connection to the proxy's log, naming the
// agent and the transport first.
func (s *session) log(level slog.Level, msg string, attrs ...slog.Attr) {
	head := []slog.Attr{slog.String("agent_id", s.caps.GetAgentId()), slog.String("transport", s.w.name())}
	s.cfg.logger.LogAttrs(context.Background(), level, msg, append(head, attrs...)...)
}

// clip cuts s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int) (string, bool) {
	if len(s) <= n {
		return s, false
	}
	n = max(n, 0)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…", true
}
