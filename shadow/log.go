package shadow

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"
)

// Disagreement is one event the two agents answered differently.
type Disagreement struct {
	Time            time.Time `json:"time"`
	Primary         string    `json:"primary"`
	Shadow          string    `json:"shadow"`
	Result          Result    `json:"result"`
	CorrelationID   string    `json:"correlation_id"`
	Event           string    `json:"event"`
	PrimaryDecision string    `json:"primary_decision"`
	ShadowDecision  string    `json:"shadow_decision"`
	PrimaryTags     []string  `json:"primary_tags,omitempty"`
	ShadowTags      []string  `json:"shadow_tags,omitempty"`
}

// disagreementLog keeps the latest disagreements in a ring.
type disagreementLog struct {
	mu   sync.Mutex // guards the fields below
	ring []Disagreement
	next int
	full bool
}

func (l *disagreementLog) init(n int) { l.ring = make([]Disagreement, n) }

func (l *disagreementLog) add(d Disagreement) {
	l.mu.Lock()
	l.ring[l.next] = d
	l.next = (l.next + 1) % len(l.ring)
	l.full = l.full || l.next == 0
	l.mu.Unlock()
}

// Disagreements returns the latest disagreements, oldest first.
func (ic *Interceptor) Disagreements() []Disagreement {
	l := &ic.log
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.full {
		return append([]Disagreement(nil), l.ring[:l.next]...)
	}
	return append(append([]Disagreement(nil), l.ring[l.next:]...), l.ring[:l.next]...)
}

// Report is what [Interceptor.Handler] serves.
type Report struct {
	Primary       string            `json:"primary"`
	Shadow        string            `json:"shadow"`
	Counts        map[Result]uint64 `json:"counts"`
	Disagreements []Disagreement    `json:"disagreements"`
}

// Handler serves the pair, the counts and the latest disagreements as
// JSON (a Report), for an admin endpoint that `agentctl shadow` reads.
// Serve it on loopback or behind authentication: it shows request ids.
func (ic *Interceptor) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		p, s := ic.Agents()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(Report{Primary: p, Shadow: s, Counts: ic.Stats(), Disagreements: ic.Disagreements()})
	})
}
