package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// defaultJaeger is Jaeger's query API when neither -jaeger nor
// AGENTWIRE_JAEGER_QUERY says otherwise.
const defaultJaeger = "http://127.0.0.1:16686"

// barWidth is the width of the waterfall's timeline column.
const barWidth = 32

// jaegerTrace is a trace as Jaeger's query API (/api/traces) returns it.
type jaegerTrace struct {
	TraceID   string                                  `json:"traceID"`
	Spans     []jaegerSpan                            `json:"spans"`
	Processes map[string]struct{ ServiceName string } `json:"processes"`
}

type jaegerSpan struct {
	SpanID        string `json:"spanID"`
	OperationName string `json:"operationName"`
	ProcessID     string `json:"processID"`
	StartTime     int64  `json:"startTime"` // µs since the epoch
	Duration      int64  `json:"duration"`  // µs
	References    []struct {
		RefType string `json:"refType"`
		SpanID  string `json:"spanID"`
	} `json:"references"`
	Tags []struct {
		Key   string `json:"key"`
		Value any    `json:"value"`
	} `json:"tags"`
}

// runTrace prints a trace from Jaeger's query API as a text waterfall.
func runTrace(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("trace", "TRACE-ID | --last [-service NAME] [-jaeger URL]", stderr)
	jaeger := fs.String("jaeger", envOr("AGENTWIRE_JAEGER_QUERY", defaultJaeger), "Jaeger query API (env AGENTWIRE_JAEGER_QUERY)")
	last := fs.Bool("last", false, "the most recent trace (of -service, else of any service)")
	service := fs.String("service", "", "service whose most recent trace --last prints")
	timeout := fs.Duration("timeout", 5*time.Second, "bound on the queries")
	asJSON := fs.Bool("json", false, "print the trace as Jaeger returns it")
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos, args = append(pos, fs.Arg(0)), fs.Args()[1:]
	}
	if *last == (len(pos) == 1) || len(pos) > 1 {
		fmt.Fprintln(stderr, "agentctl trace: give one TRACE-ID or --last")
		fs.Usage()
		return errUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	q := &jaegerQuery{base: strings.TrimRight(*jaeger, "/")}
	id := ""
	if len(pos) == 1 {
		id = pos[0]
	} else {
		var err error
		if id, err = q.latest(ctx, *service); err != nil {
			return err
		}
	}
	var body struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := q.get(ctx, "/api/traces/"+url.PathEscape(id), &body); err != nil {
		return err
	}
	if len(body.Data) == 0 {
		return failf(exitFail, "trace %s not found in %s", id, q.base)
	}
	if *asJSON {
		_, err := fmt.Fprintf(stdout, "%s\n", body.Data[0])
		return err
	}
	var tr jaegerTrace
	if err := json.Unmarshal(body.Data[0], &tr); err != nil {
		return failf(exitIncompatible, "%s: not a Jaeger trace: %v", q.base, err)
	}
	return printWaterfall(stdout, &tr)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// jaegerQuery reads Jaeger's HTTP JSON query API.
type jaegerQuery struct{ base string }

func (q *jaegerQuery) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, q.base+path, nil)
	if err != nil {
		return failf(exitUsage, "Jaeger URL %q: %v", q.base, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return failf(exitUnreachable, "cannot reach Jaeger at %s: %s", q.base, describeErr(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return failf(exitFail, "%s: not found", path)
	case resp.StatusCode != http.StatusOK:
		return failf(exitIncompatible, "%s%s answered %s", q.base, path, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(v); err != nil {
		return failf(exitIncompatible, "%s%s: not Jaeger's query API: %v", q.base, path, err)
	}
	return nil
}

// latest returns the id of the most recent trace of service, or of any
// service when it is empty.
func (q *jaegerQuery) latest(ctx context.Context, service string) (string, error) {
	services := []string{service}
	if service == "" {
		var body struct {
			Data []string `json:"data"`
		}
		if err := q.get(ctx, "/api/services", &body); err != nil {
			return "", err
		}
		services = body.Data
	}
	id, newest := "", int64(0)
	for _, svc := range services {
		var body struct {
			Data []jaegerTrace `json:"data"`
		}
		if err := q.get(ctx, "/api/traces?limit=20&lookback=1h&service="+url.QueryEscape(svc), &body); err != nil {
			return "", err
		}
		for _, tr := range body.Data {
			if start := tr.start(); id == "" || start > newest {
				id, newest = tr.TraceID, start
			}
		}
	}
	if id == "" {
		return "", failf(exitFail, "no trace in the last hour in %s (services %s)", q.base, strings.Join(services, ", "))
	}
	return id, nil
}

// start is when the trace's first span started (µs).
func (tr *jaegerTrace) start() int64 {
	var first int64
	for i, s := range tr.Spans {
		if i == 0 || s.StartTime < first {
			first = s.StartTime
		}
	}
	return first
}

// printWaterfall prints tr as a tree of spans, children under their
// parent in start order, with each span's service, start offset,
// duration, decision and place on the timeline.
func printWaterfall(w io.Writer, tr *jaegerTrace) error {
	start, end := tr.start(), int64(0)
	byID := map[string]bool{}
	services := map[string]bool{}
	for _, s := range tr.Spans {
		byID[s.SpanID] = true
		end = max(end, s.StartTime+s.Duration)
		services[tr.Processes[s.ProcessID].ServiceName] = true
	}
	children := map[string][]jaegerSpan{}
	for _, s := range tr.Spans {
		p := s.parent()
		if !byID[p] {
			p = "" // a root, or a parent Jaeger does not have
		}
		children[p] = append(children[p], s)
	}
	for _, c := range children {
		sort.SliceStable(c, func(i, j int) bool { return c[i].StartTime < c[j].StartTime })
	}
	total := max(end-start, 1)
	fmt.Fprintf(w, "trace %s: %d spans, %d services, %s\n\n", tr.TraceID, len(tr.Spans), len(services), usMS(total))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tSPAN\tSTART\tDURATION\tDECISION\tTIMELINE")
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		for _, s := range children[parent] {
			fmt.Fprintf(tw, "%s\t%s%s\t+%s\t%s\t%s\t%s\n", tr.Processes[s.ProcessID].ServiceName,
				strings.Repeat("  ", depth), s.label(), usMS(s.StartTime-start), usMS(s.Duration), s.decision(),
				bar(s.StartTime-start, s.Duration, total))
			walk(s.SpanID, depth+1)
		}
	}
	walk("", 0)
	return tw.Flush()
}

// usMS formats µs as milliseconds.
func usMS(us int64) string { return fmt.Sprintf("%.3fms", float64(us)/1000) }

// bar places a span of duration d at offset off on a timeline of total.
func bar(off, d, total int64) string {
	from := int(off * barWidth / total)
	n := max(1, int((off+d)*barWidth/total)-from)
	from = min(from, barWidth-1)
	n = min(n, barWidth-from)
	return "|" + strings.Repeat(" ", from) + strings.Repeat("=", n) + strings.Repeat(" ", barWidth-from-n) + "|"
}

func (s *jaegerSpan) parent() string {
	for _, r := range s.References {
		if r.RefType == "CHILD_OF" {
			return r.SpanID
		}
	}
	return ""
}

func (s *jaegerSpan) tag(key string) (any, bool) {
	for _, t := range s.Tags {
		if t.Key == key {
			return t.Value, true
		}
	}
	return nil, false
}

func (s *jaegerSpan) str(key string) string {
	if v, ok := s.tag(key); ok {
		return fmt.Sprint(v)
	}
	return ""
}

// label is the span's name without its RPC service, with the agent it
// went to, or an HTTP server span's path.
func (s *jaegerSpan) label() string {
	name := s.OperationName
	if svc := s.str("rpc.service"); svc != "" {
		name = strings.TrimPrefix(name, svc+"/")
	}
	if p := s.str("url.path"); p != "" && !strings.Contains(name, " ") {
		name += " " + p
	}
	if a := s.str("agentwire.agent.id"); a != "" {
		name += " → " + a
	}
	return name
}

// decision is the agent's decision, an error, or an HTTP status.
func (s *jaegerSpan) decision() string {
	if d := s.str("agentwire.decision"); d != "" {
		if st := s.str("agentwire.block.status"); st != "" {
			d += " " + st
		}
		return d
	}
	if c := s.str("rpc.grpc.status_code"); c != "" && c != "0" {
		return "error " + c
	}
	if st := s.str("http.response.status_code"); st != "" {
		return "HTTP " + st
	}
	if e, _ := s.tag("error"); e == true {
		return "error"
	}
	return "-"
}
