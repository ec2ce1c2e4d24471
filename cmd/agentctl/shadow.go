package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"text/tabwriter"

	"github.com/agentwire/agentwire/shadow"
)

// runShadow prints a proxy's shadow comparison: the report its
// shadow.Interceptor.Handler serves at URL.
func runShadow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("shadow", "URL [flags]   (a proxy's shadow.Interceptor.Handler endpoint)", stderr)
	var c common
	c.register(fs)
	url, err := parseEndpoint(fs, args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return failf(exitUsage, "URL %q: %v", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return failf(exitUnreachable, "cannot reach %s: %s", url, describeErr(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return failf(exitIncompatible, "%s answered %s", url, resp.Status)
	}
	var rep shadow.Report
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&rep); err != nil {
		return failf(exitIncompatible, "%s did not serve a shadow report: %v", url, err)
	}
	if c.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	fmt.Fprintf(stdout, "primary %s, shadow %s\n\n", rep.Primary, rep.Shadow)
	results := make([]string, 0, len(rep.Counts))
	for r := range rep.Counts {
		results = append(results, string(r))
	}
	sort.Strings(results)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\n", r, rep.Counts[shadow.Result(r)])
	}
	_ = tw.Flush()
	fmt.Fprintf(stdout, "\nlatest disagreements (%d)\n", len(rep.Disagreements))
	tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	for _, d := range rep.Disagreements {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s | %s\n", d.Time.Format("15:04:05.000"), d.Result, d.CorrelationID, d.Event, d.PrimaryDecision, d.ShadowDecision)
	}
	return tw.Flush()
}
