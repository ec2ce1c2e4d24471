package agenttest

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Result is the outcome of one check.
type Result struct {
	// Name identifies the check, e.g. "handshake" or "event/guardrail".
	Name string
	// Passed is true when the agent behaved as the protocol requires.
	Passed bool
	// Skipped is true when the check did not apply (a framed-transport check
	// on gRPC, a feature the agent does not advertise, nothing configured to
	// check) or did not run to its end (the suite's context ended). Passed is
	// then false.
	Skipped bool
	// Optional checks test behaviour the protocol recommends but does not
	// require, or an event kind the agent did not list; failing them does
	// not fail the suite.
	Optional bool
	// Detail says what was observed, or why the check failed.
	Detail string
	// Duration is how long the check ran.
	Duration time.Duration
}

// Failed reports whether r counts against the agent: a required check that
// ran and did not pass.
func (r Result) Failed() bool { return !r.Passed && !r.Skipped && !r.Optional }

// Status is r's verdict as one word: PASS, FAIL, SKIP, or WARN for a failed
// optional check.
func (r Result) Status() string {
	switch {
	case r.Passed:
		return "PASS"
	case r.Skipped:
		return "SKIP"
	case r.Optional:
		return "WARN"
	}
	return "FAIL"
}

type resultJSON struct {
	Name       string  `json:"name"`
	Status     string  `json:"status"`
	Passed     bool    `json:"passed"`
	Skipped    bool    `json:"skipped,omitempty"`
	Optional   bool    `json:"optional,omitempty"`
	Detail     string  `json:"detail,omitempty"`
	DurationMS float64 `json:"duration_ms"`
}

// MarshalJSON encodes r with snake_case keys, its status word and its
// duration in milliseconds.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(resultJSON{
		Name: r.Name, Status: r.Status(), Passed: r.Passed, Skipped: r.Skipped, Optional: r.Optional,
		Detail: r.Detail, DurationMS: float64(r.Duration.Microseconds()) / 1000,
	})
}

// UnmarshalJSON decodes what MarshalJSON encodes.
func (r *Result) UnmarshalJSON(b []byte) error {
	var j resultJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = Result{Name: j.Name, Passed: j.Passed, Skipped: j.Skipped, Optional: j.Optional, Detail: j.Detail,
		Duration: time.Duration(j.DurationMS * float64(time.Millisecond))}
	return nil
}

// Passed reports whether every required check in results passed.
func Passed(results []Result) bool {
	for _, r := range results {
		if r.Failed() {
			return false
		}
	}
	return true
}

// Summary counts results by status.
type Summary struct {
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
	// Warned counts failed optional checks.
	Warned int `json:"optional_failed"`
}

// Summarize counts results by status.
func Summarize(results []Result) Summary {
	var s Summary
	for _, r := range results {
		switch r.Status() {
		case "PASS":
			s.Passed++
		case "FAIL":
			s.Failed++
		case "SKIP":
			s.Skipped++
		case "WARN":
			s.Warned++
		}
	}
	return s
}

func (s Summary) String() string {
	return fmt.Sprintf("%d passed, %d failed, %d skipped, %d optional failed", s.Passed, s.Failed, s.Skipped, s.Warned)
}

// WriteTable prints results as an aligned pass/fail table followed by a
// summary line.
func WriteTable(w io.Writer, results []Result) error {
	names := make([]string, len(results))
	for i, r := range results {
		names[i] = r.Name
	}
	t := NewTableWriter(w, names...)
	for _, r := range results {
		if err := t.Write(r); err != nil {
			return err
		}
	}
	return t.Summary(results)
}

// TableWriter prints results as rows of a table as each check ends: the
// columns are sized up front, from the check names, so no row waits for
// the others. Its methods must not be called concurrently.
type TableWriter struct {
	w         io.Writer
	nameWidth int
	started   bool // the header is out
}

// optionalMark follows the name of an optional check.
const optionalMark = " (optional)"

// NewTableWriter returns a TableWriter for results of the named checks
// (every check when none are named).
func NewTableWriter(w io.Writer, names ...string) *TableWriter {
	if len(names) == 0 {
		names = CheckNames()
	}
	width := len("CHECK")
	for _, n := range names {
		width = max(width, len(n)+len(optionalMark))
	}
	return &TableWriter{w: w, nameWidth: width}
}

// Write prints r as one row, after the header if it is the first.
func (t *TableWriter) Write(r Result) error {
	if !t.started {
		t.started = true
		if err := t.row("CHECK", "RESULT", "TIME", "DETAIL"); err != nil {
			return err
		}
	}
	name := r.Name
	if r.Optional {
		name += optionalMark
	}
	return t.row(name, r.Status(), formatDuration(r.Duration), strings.ReplaceAll(r.Detail, "\n", " "))
}

func (t *TableWriter) row(name, status, took, detail string) error {
	line := fmt.Sprintf("%-*s  %-6s  %-8s  %s", t.nameWidth, name, status, took, detail)
	_, err := fmt.Fprintln(t.w, strings.TrimRight(line, " "))
	return err
}

// Summary prints the verdict and counts of results.
func (t *TableWriter) Summary(results []Result) error {
	verdict := "PASS"
	if !Passed(results) {
		verdict = "FAIL"
	}
	_, err := fmt.Fprintf(t.w, "%s: %s\n", verdict, Summarize(results))
	return err
}

func formatDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}
