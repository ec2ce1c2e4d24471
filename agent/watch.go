package agent

import (
	"sync"
	"sync/atomic"
	"time"
)

// quietTicks is how many ticks without inline work make the watch stop
// ticking until the next inline event.
const quietTicks = 20

// relaxFactor: while no handler has been slow, the watch looks only every
// relaxFactor budgets; alertPeriod is how long it looks every budget after
// a slow handler or a takeover. Each look is a wake-up of a thread, which
// costs as much CPU as a few events on a small VM.
const (
	relaxFactor = 10
	alertPeriod = time.Second
)

// inlineWatch finds events that run on a reading goroutine for longer than
// the inline budget, for every session of a server, and has the reading
// taken over. One ticker serves all sessions: a timer armed per event
// would wake the runtime's network poller, a system call per event. It
// ticks only while some session handles events inline: every budget for a
// while after a handler was slow, every relaxFactor budgets otherwise.
type inlineWatch struct {
	srv  *Server
	tick time.Duration // the budget: the period while alert
	// alarm is set by a session whose inline handler was slow.
	alarm atomic.Bool
	// parked is set while the ticker is stopped; the first inline event
	// after that clears it and sends on wake.
	parked atomic.Bool
	wake   chan struct{} // capacity 1
	stop   chan struct{}
	start  sync.Once
	end    sync.Once
}

func newInlineWatch(srv *Server, budget time.Duration) *inlineWatch {
	return &inlineWatch{srv: srv, tick: budget, wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// launch starts the watch on a goroutine the server waits for; srv.mu is
// held. It does nothing if the server has no inline budget.
func (w *inlineWatch) launchLocked() {
	if w.tick <= 0 {
		return
	}
	w.start.Do(func() {
		w.srv.wg.Add(1)
		go w.run()
	})
}

// close stops the watch.
func (w *inlineWatch) close() { w.end.Do(func() { close(w.stop) }) }

// alert makes the watch look every budget for a while: a handler ran
// long.
func (w *inlineWatch) alert() { w.alarm.Store(true) }

// active is called after an inline event starts: it restarts a parked
// watch.
func (w *inlineWatch) active() {
	if w.parked.Load() && w.parked.CompareAndSwap(true, false) {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (w *inlineWatch) run() {
	defer w.srv.wg.Done()
	relaxed := relaxFactor * w.tick
	period, alert := relaxed, 0 // alert: ticks left at the short period
	t := time.NewTicker(period)
	defer t.Stop()
	quiet := 0
	var stuck []*session
	var seqs []uint64
	for {
		select {
		case <-t.C:
		case <-w.stop:
			return
		}
		stuck, seqs = stuck[:0], seqs[:0]
		busy := w.scan(func(s *session, seq uint64) {
			stuck = append(stuck, s)
			seqs = append(seqs, seq)
		})
		for i, s := range stuck {
			s.takeover(seqs[i])
		}
		switch {
		case w.alarm.Swap(false) || len(stuck) > 0:
			alert = int(alertPeriod / w.tick)
			if period != w.tick {
				period = w.tick
				t.Reset(period)
			}
		case alert > 0:
			if alert--; alert == 0 {
				period = relaxed
				t.Reset(period)
			}
		}
		if busy {
			quiet = 0
			continue
		}
		if quiet++; quiet < quietTicks {
			continue
		}
		// Park. An inline event that started before parked was set is
		// seen by the second scan; one after it sees parked and wakes us.
		t.Stop()
		w.parked.Store(true)
		if w.scan(func(*session, uint64) {}) {
			w.parked.Store(false)
		} else {
			select {
			case <-w.wake:
			case <-w.stop:
				return
			}
		}
		quiet = 0
		t.Reset(period)
	}
}

// scan looks at every session: it reports whether any ran events inline
// since the last look, and calls stuck for each one whose inline event has
// been running since the last look.
func (w *inlineWatch) scan(stuck func(s *session, seq uint64)) (busy bool) {
	w.srv.mu.Lock()
	defer w.srv.mu.Unlock()
	for _, s := range w.srv.sessions {
		seq := s.inlineSeq.Load()
		switch {
		case seq != s.watchSeen:
			busy = true
		case seq&1 == 1:
			// The same event has run since the last look, a tick (the
			// budget) ago: it has run for at least the budget.
			busy = true
			stuck(s, seq)
		}
		s.watchSeen = seq
	}
	return busy
}
