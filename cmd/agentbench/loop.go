package main

import (
	"context"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// histogram records latencies in nanoseconds in log-linear buckets: 32 per
// power of two, so a reported percentile is within ~3% of the true value.
// It is not safe for concurrent use: each driving goroutine has its own.
type histogram struct {
	counts [64 << histSubBits]uint32
	n      uint64
}

const histSubBits = 5

func histBucket(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	e := bits.Len64(v) - 1 - histSubBits
	return (e+1)<<histSubBits | int(v>>e&(1<<histSubBits-1))
}

// histValue is the middle of bucket i.
func histValue(i int) uint64 {
	if i < 1<<histSubBits {
		return uint64(i)
	}
	e := i>>histSubBits - 1
	m := uint64(i & (1<<histSubBits - 1))
	return (1<<histSubBits|m)<<e + (1<<e)/2
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histBucket(uint64(d))]++
	h.n++
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
}

// quantile returns the q-quantile (0 < q <= 1), or 0 for no samples.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return time.Duration(histValue(i))
		}
	}
	return time.Duration(histValue(len(h.counts) - 1))
}

// roundTrip does one exchange with the server: send one event (or frame,
// or message) and wait for its answer.
type roundTrip func(ctx context.Context) error

// loopResult is what one closed-loop measurement saw.
type loopResult struct {
	events    uint64
	errors    uint64
	firstErr  error
	elapsed   time.Duration
	hist      histogram
	clientCPU time.Duration
	serverCPU time.Duration
	mallocs   uint64
	// clientSys and serverSys count read and write system calls.
	clientSys, serverSys uint64
}

// Phases of a measurement.
const (
	phaseWarm = iota
	phaseMeasure
	phaseStop
)

// tally is what one driver counted. Only its driver writes it.
type tally struct {
	n, errs  uint64
	firstErr error
	hist     histogram
}

func (t *tally) fail(err error) {
	t.errs++
	if t.firstErr == nil {
		t.firstErr = err
	}
}

// driver loads the server until phase is phaseStop. It records into t the
// exchanges that end while phase is phaseMeasure, wherever they started,
// and the errors from warm-up on.
type driver func(ctx context.Context, phase *atomic.Int32, t *tally)

// closedLoop drives every worker in its own goroutine, one round trip
// after another: see measure.
func closedLoop(ctx context.Context, workers []roundTrip, warmup, duration time.Duration, serverPID int) loopResult {
	drivers := make([]driver, len(workers))
	for i, rt := range workers {
		drivers[i] = closedDriver(rt)
	}
	return measure(ctx, drivers, warmup, duration, serverPID)
}

// closedDriver does one round trip after another, timing each.
func closedDriver(rt roundTrip) driver {
	return func(ctx context.Context, phase *atomic.Int32, t *tally) {
		for {
			p := phase.Load()
			if p == phaseStop {
				return
			}
			t0 := time.Now()
			err := rt(ctx)
			d := time.Since(t0)
			measured := phase.Load() == phaseMeasure
			switch {
			case err != nil && (measured || p == phaseWarm && ctx.Err() == nil):
				// Errors while warming up are as telling as later ones.
				t.fail(err)
				time.Sleep(time.Millisecond) // do not spin on a broken connection
			case err == nil && measured:
				t.hist.record(d)
				t.n++
			}
		}
	}
}

// measure runs every driver in its own goroutine for warm-up and then for
// the measured duration. With fewer exchanges per driver than the window
// holds (a slow transport, a loaded machine) throughput is still
// completions per second. CPU time of this process and of the server
// process (serverPID; 0 for none) and this process's allocations are read
// at both ends of the window.
func measure(ctx context.Context, drivers []driver, warmup, duration time.Duration, serverPID int) loopResult {
	var (
		phase atomic.Int32
		wg    sync.WaitGroup
		res   loopResult
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tallies := make([]tally, len(drivers))
	for i, d := range drivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d(ctx, &phase, &tallies[i])
		}()
	}
	sleepCtx(ctx, warmup)

	// The window's edges are the phase changes. Returning from a system
	// call can leave this goroutine waiting for a P behind every busy
	// driver (up to a second with 256 of them never blocking, as cache
	// hits do): no system call sits between an edge and the readings that
	// must share it, and this process's CPU is read inside the window
	// (the kernel reads it before any such wait), so a wait is either in
	// the window for events, CPU and allocations alike, or in none.
	var ms0, ms1 runtime.MemStats
	srv0, sys0, ssys0 := procCPU(serverPID), procSyscalls(0), procSyscalls(serverPID)
	runtime.ReadMemStats(&ms0)
	t0 := time.Now()
	phase.Store(phaseMeasure)
	self0 := selfCPU()
	sleepCtx(ctx, duration)
	phase.Store(phaseStop)
	res.elapsed = time.Since(t0)
	runtime.ReadMemStats(&ms1)
	self1 := selfCPU()
	srv1, sys1, ssys1 := procCPU(serverPID), procSyscalls(0), procSyscalls(serverPID)
	// In-flight exchanges finish on their own; a stuck one is cut off.
	stuck := time.AfterFunc(5*time.Second, cancel)
	wg.Wait()
	stuck.Stop()

	res.clientCPU = self1 - self0
	res.serverCPU = srv1 - srv0
	res.mallocs = ms1.Mallocs - ms0.Mallocs
	res.clientSys, res.serverSys = sys1-sys0, ssys1-ssys0
	for i := range tallies {
		t := &tallies[i]
		res.events += t.n
		res.errors += t.errs
		if res.firstErr == nil {
			res.firstErr = t.firstErr
		}
		res.hist.merge(&t.hist)
	}
	return res
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
