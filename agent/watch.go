package agent

import (
	"sync"
	"sync/atomic"
	"time"
)

// The watch parks after quietTicks ticks without inline work. It looks
// every relaxFactor budgets while handlers are quick, and every budget for
// alertPeriod after a slow one: each look wakes a thread, which costs as
// much as a few events on a small VM.
const (
	quietTicks  = 20
	relaxFactor = 10
	alertPeriod = time.Second
)

// inlineWatch finds events that run on a reader for longer than the inline
// budget, in every session of a server, and has the reading taken over.
// One ticker serves all sessions (a timer per event would cost a system
// call per event), ticking only while some session handles events inline.
type inlineWatch struct {
	srv  *Server
	tick time.Duration // the budget: the period while alert
	// alarm is set by a session whose inline handler was slow.
	alarm atomic.Bool
	// parked is set while the ticker is stopped; the next inline event
	// clears it and sends on wake.
	parked atomic.Bool
	wake   chan struct{} // capacity 1
	stop   chan struct{}
	start  sync.Once
	end    sync.Once
}

func newInlineWatch(srv *Server, budget time.Duration) *inlineWatch {
	return &inlineWatch{srv: srv, tick: budget, wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// launchLocked starts the watch, once, on a goroutine the server waits
// for, unless there is no inline budget; srv.mu is held.
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

// alert makes the watch look every budget for a while.
func (w *inlineWatch) alert() { w.alarm.Store(true) }

// active restarts a parked watch: an inline event started.
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

// scan reports whether any session ran events inline since the last
// look, and calls stuck for each whose inline event ran all that time.
func (w *inlineWatch) scan(stuck func(s *session, seq uint64)) (busy bool) {
	w.srv.mu.Lock()
	defer w.srv.mu.Unlock()
	for _, s := range w.srv.sessions {
		seq := s.inlineSeq.Load()
		switch {
		case seq != s.watchSeen:
			busy = true
		case seq&1 == 1:
			// The same event since the last look: a budget or more.
			busy = true
			stuck(s, seq)
		}
		s.watchSeen = seq
	}
	return busy
}
