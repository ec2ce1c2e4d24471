package reliability_test

import (
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// A re-executed copy of this binary running as another user (see
	// unixperm_test.go) does its one job and exits.
	if path := os.Getenv(childDialEnv); path != "" {
		os.Exit(childDial(path))
	}
	code := m.Run()
	cleanupBuilds()
	printFigures()
	if code == 0 {
		// goleak's own TestMain would exit before our cleanup.
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// figures collects the numbers the suite produces for docs/reliability.md's
// Reliability section; TestMain prints them (visible with go test -v).
var figures struct {
	mu    sync.Mutex
	lines map[string]string
}

// figure records one figure under key, replacing an earlier one.
func figure(t *testing.T, key, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Logf("figure %s: %s", key, line)
	figures.mu.Lock()
	defer figures.mu.Unlock()
	if figures.lines == nil {
		figures.lines = make(map[string]string)
	}
	figures.lines[key] = line
}

// faultsSurvived counts injected faults (process signals, protocol
// violations) after which the proxy side behaved as specified.
var faultsSurvived atomic.Int64

// hostileRejected counts hostile connection attempts (bad registrations,
// slow clients, wrong uid, bad certificates) that were refused.
var hostileRejected atomic.Int64

func printFigures() {
	figures.mu.Lock()
	defer figures.mu.Unlock()
	if len(figures.lines) == 0 || !testing.Verbose() {
		return
	}
	keys := make([]string, 0, len(figures.lines))
	for k := range figures.lines {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Println("reliability figures:")
	fmt.Printf("  %-24s %d\n", "faults survived", faultsSurvived.Load())
	fmt.Printf("  %-24s %d\n", "hostile rejected", hostileRejected.Load())
	for _, k := range keys {
		fmt.Printf("  %-24s %s\n", k, figures.lines[k])
	}
}
