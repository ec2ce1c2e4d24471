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

// Phases of a closed loop.
const (
	phaseWarm = iota
	phaseMeasure
	phaseStop
)

// closedLoop runs every worker in its own goroutine, each doing one round
// trip after another, for warm-up and then for the measured duration. The
// exchanges that end inside the measured window count, wherever they
// started: with fewer exchanges per worker than the window holds (a slow
// transport, a loaded machine) throughput is still completions per second. CPU time
// of this process and of the server process (serverPID; 0 for none) and
// this process's allocations are read at both ends of the window.
func closedLoop(ctx context.Context, workers []roundTrip, warmup, duration time.Duration, serverPID int) loopResult {
	var (
		phase atomic.Int32
		wg    sync.WaitGroup
		mu    sync.Mutex
		res   loopResult
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hists := make([]*histogram, len(workers))
	for i, rt := range workers {
		h := new(histogram)
		hists[i] = h
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n, errs uint64
			var firstErr error
			for {
				p := phase.Load()
				if p == phaseStop {
					break
				}
				t0 := time.Now()
				err := rt(ctx)
				d := time.Since(t0)
				if phase.Load() != phaseMeasure {
					if err != nil && ctx.Err() == nil && p == phaseWarm {
						// Errors while warming up are as telling as later ones.
						errs++
						if firstErr == nil {
							firstErr = err
						}
						time.Sleep(time.Millisecond)
					}
					continue
				}
				if err != nil {
					errs++
					if firstErr == nil {
						firstErr = err
					}
					time.Sleep(time.Millisecond) // do not spin on a broken connection
					continue
				}
				h.record(d)
				n++
			}
			mu.Lock()
			res.events += n
			res.errors += errs
			if res.firstErr == nil {
				res.firstErr = firstErr
			}
			mu.Unlock()
		}()
	}
	sleepCtx(ctx, warmup)

	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	self0, srv0 := selfCPU(), procCPU(serverPID)
	sys0, ssys0 := procSyscalls(0), procSyscalls(serverPID)
	t0 := time.Now()
	phase.Store(phaseMeasure)
	sleepCtx(ctx, duration)
	phase.Store(phaseStop)
	res.elapsed = time.Since(t0)
	self1, srv1 := selfCPU(), procCPU(serverPID)
	sys1, ssys1 := procSyscalls(0), procSyscalls(serverPID)
	runtime.ReadMemStats(&ms1)
	// In-flight exchanges finish on their own; a stuck one is cut off.
	stuck := time.AfterFunc(5*time.Second, cancel)
	wg.Wait()
	stuck.Stop()

	res.clientCPU = self1 - self0
	res.serverCPU = srv1 - srv0
	res.mallocs = ms1.Mallocs - ms0.Mallocs
	res.clientSys, res.serverSys = sys1-sys0, ssys1-ssys0
	for _, h := range hists {
		res.hist.merge(h)
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
