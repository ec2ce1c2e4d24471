package otel

import (
	"context"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Reasons (agentwire.drop.reason) for samples of agents' metrics reports
// that are not bridged.
const (
	DropSeriesLimit     = "series_limit"
	DropInstrumentLimit = "instrument_limit"
	DropInvalidName     = "invalid_name"
	DropTypeConflict    = "type_conflict"
	DropInstrumentError = "instrument_error"
)

// sampleKind is the instrument a reported sample goes to.
type sampleKind int

const (
	intCounter   sampleKind = iota // counters, histogram counts and buckets
	floatCounter                   // histogram sums
	floatGauge                     // gauges
)

// reportBridge turns agents' MetricsReports into observable instruments:
// one per metric name (prefixed), observed at collection from the last
// value reported for each series. Series are (agent, labels); histograms
// become name.count, name.sum and name.bucket (with an "le" attribute).
// The number of instruments and of series is capped; what does not fit is
// dropped and counted, and series not reported for the staleness period
// disappear. A reportBridge is safe for concurrent use.
type reportBridge struct {
	meter          metric.Meter
	prefix         string
	maxSeries      int
	maxInstruments int
	stale          time.Duration
	now            func() time.Time
	dropped        metric.Int64Counter

	// mu serialises reports and guards insts. It is held while
	// instruments are created, which takes the SDK's pipeline lock; the
	// SDK holds that lock while it runs the callbacks, so callbacks never
	// take mu (only data).
	mu sync.Mutex
	// insts holds the instruments by full name.
	insts map[string]*bridged

	// data guards every instrument's series and the series count: a
	// report's samples are stored under it at once, so that a collection
	// sees a report whole or not at all.
	data   sync.Mutex
	series int
}

// bridged is one bridged instrument and its series.
type bridged struct {
	kind   sampleKind
	series map[string]*sample // guarded by reportBridge.data
}

// sample is the last value of one series.
type sample struct {
	attrs attribute.Set
	i     int64
	f     float64
	at    time.Time
}

func newReportBridge(m metric.Meter, cfg *config, dropped metric.Int64Counter) *reportBridge {
	return &reportBridge{
		meter:          m,
		prefix:         cfg.reportPrefix,
		maxSeries:      cfg.reportSeries,
		maxInstruments: cfg.reportInstruments,
		stale:          cfg.reportStale,
		now:            cfg.now,
		dropped:        dropped,
		insts:          make(map[string]*bridged),
	}
}

// record stores report r of agent agentID (r.AgentId when empty).
func (b *reportBridge) record(agentID string, r *agentv2.MetricsReport) {
	if agentID == "" {
		agentID = r.GetAgentId()
	}
	now := b.now()
	var drops map[string]int64
	drop := func(reason string) {
		if drops == nil {
			drops = make(map[string]int64)
		}
		drops[reason]++
	}
	b.mu.Lock()
	// First the instruments, created outside data (see mu); then every
	// sample at once.
	var insts []*bridged
	eachSample(r, func(kind sampleKind, name, help string, _ map[string]string, _ string, _ int64, _ float64) {
		insts = append(insts, b.instrument(kind, b.prefix+name, help, drop))
	})
	b.data.Lock()
	n := 0
	eachSample(r, func(_ sampleKind, _, _ string, labels map[string]string, le string, i int64, f float64) {
		if inst := insts[n]; inst != nil {
			b.put(inst, agentID, labels, le, i, f, now, drop)
		}
		n++
	})
	b.data.Unlock()
	b.mu.Unlock()
	for reason, n := range drops {
		b.dropped.Add(context.Background(), n, metric.WithAttributes(AgentIDKey.String(agentID), DropReasonKey.String(reason)))
	}
}

func clampInt(v uint64) int64 { return int64(min(v, math.MaxInt64)) }

// eachSample calls f for every sample of r, in a fixed order: counters,
// gauges, then each histogram's count, sum and buckets.
func eachSample(r *agentv2.MetricsReport, f func(kind sampleKind, name, help string, labels map[string]string, le string, i int64, v float64)) {
	for _, c := range r.GetCounters() {
		f(intCounter, c.GetName(), c.GetHelp(), c.GetLabels(), "", clampInt(c.GetValue()), 0)
	}
	for _, g := range r.GetGauges() {
		f(floatGauge, g.GetName(), g.GetHelp(), g.GetLabels(), "", 0, g.GetValue())
	}
	for _, h := range r.GetHistograms() {
		name, help, labels := h.GetName(), h.GetHelp(), h.GetLabels()
		f(intCounter, name+".count", help, labels, "", clampInt(h.GetCount()), 0)
		f(floatCounter, name+".sum", help, labels, "", 0, h.GetSum())
		for _, bk := range h.GetBuckets() {
			f(intCounter, name+".bucket", help, labels, strconv.FormatFloat(bk.GetLe(), 'g', -1, 64), clampInt(bk.GetCount()), 0)
		}
	}
}

// instrument returns the instrument named full, creating it if needed, or
// nil when the sample is dropped; b.mu must be held, b.data must not.
func (b *reportBridge) instrument(kind sampleKind, full, help string, drop func(string)) *bridged {
	inst := b.insts[full]
	switch {
	case inst == nil:
		if !validInstrumentName(full) {
			drop(DropInvalidName)
			return nil
		}
		if len(b.insts) >= b.maxInstruments {
			drop(DropInstrumentLimit)
			return nil
		}
		var err error
		if inst, err = b.newInstrument(kind, full, help); err != nil {
			drop(DropInstrumentError)
			return nil
		}
		b.insts[full] = inst
	case inst.kind != kind:
		drop(DropTypeConflict)
		return nil
	}
	return inst
}

// put stores one sample of inst; b.data must be held.
func (b *reportBridge) put(inst *bridged, agentID string, labels map[string]string, le string,
	i int64, f float64, now time.Time, drop func(string),
) {
	key := seriesKey(agentID, labels, le)
	s := inst.series[key]
	if s == nil {
		if b.series >= b.maxSeries {
			drop(DropSeriesLimit)
			return
		}
		s = &sample{attrs: seriesAttrs(agentID, labels, le)}
		inst.series[key] = s
		b.series++
	}
	s.i, s.f, s.at = i, f, now
}

func (b *reportBridge) newInstrument(kind sampleKind, name, help string) (*bridged, error) {
	inst := &bridged{kind: kind, series: make(map[string]*sample)}
	var err error
	switch kind {
	case intCounter:
		_, err = b.meter.Int64ObservableCounter(name, metric.WithDescription(help),
			metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
				b.observe(inst, func(s *sample) { o.Observe(s.i, metric.WithAttributeSet(s.attrs)) })
				return nil
			}))
	case floatCounter:
		_, err = b.meter.Float64ObservableCounter(name, metric.WithDescription(help),
			metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
				b.observe(inst, func(s *sample) { o.Observe(s.f, metric.WithAttributeSet(s.attrs)) })
				return nil
			}))
	case floatGauge:
		_, err = b.meter.Float64ObservableGauge(name, metric.WithDescription(help),
			metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
				b.observe(inst, func(s *sample) { o.Observe(s.f, metric.WithAttributeSet(s.attrs)) })
				return nil
			}))
	}
	return inst, err
}

// observe reports inst's live series and forgets the stale ones. The SDK
// calls it with its pipeline lock held: it takes b.data only.
func (b *reportBridge) observe(inst *bridged, f func(*sample)) {
	cutoff := b.now().Add(-b.stale)
	b.data.Lock()
	defer b.data.Unlock()
	for k, s := range inst.series {
		if s.at.Before(cutoff) {
			delete(inst.series, k)
			b.series--
			continue
		}
		f(s)
	}
}

// seriesKey identifies a series within an instrument.
func seriesKey(agentID string, labels map[string]string, le string) string {
	var sb strings.Builder
	sb.WriteString(agentID)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		sb.WriteByte(0)
		sb.WriteString(k)
		sb.WriteByte('=')
		sb.WriteString(labels[k])
	}
	if le != "" {
		sb.WriteString("\x00le=")
		sb.WriteString(le)
	}
	return sb.String()
}

func seriesAttrs(agentID string, labels map[string]string, le string) attribute.Set {
	kv := make([]attribute.KeyValue, 0, len(labels)+2)
	for k, v := range labels {
		kv = append(kv, attribute.String(k, v))
	}
	if le != "" {
		kv = append(kv, attribute.String("le", le))
	}
	// The agent label wins over a reported label of the same name.
	kv = append(kv, AgentIDKey.String(agentID))
	return attribute.NewSet(kv...)
}

// validInstrumentName follows the OpenTelemetry instrument name syntax:
// a letter, then up to 254 letters, digits, '_', '.', '-' or '/'.
func validInstrumentName(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-' || c == '/'):
		default:
			return false
		}
	}
	return true
}
