package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

// scenario is one shape of traffic on one transport.
type scenario struct {
	Transport string
	Conns     int
	InFlight  int
	Payload   string
}

func (s scenario) name() string {
	return fmt.Sprintf("%s %dx%d %s", s.Transport, s.Conns, s.InFlight, s.Payload)
}

// baseline is the scenario s is compared with, and false for baselines.
func (s scenario) baseline() (scenario, bool) {
	b, ok := baselineOf[s.Transport]
	if !ok {
		return scenario{}, false
	}
	s.Transport = b
	return s, true
}

// protobufBaseline is the bare grpc-go scenario with agentwire's own
// messages that a grpc scenario is also compared with.
func (s scenario) protobufBaseline() (scenario, bool) {
	if tr, _ := s.agentTransport(); tr != tGRPC || s.Payload != payloadHeaders {
		return scenario{}, false
	}
	s.Transport = tBarePB
	return s, true
}

// bytesBaseline is the bare grpc-go scenario without protobuf at all
// (bytes passed through a codec) that a grpc scenario is also compared
// with: the floor of grpc-go's own cost.
func (s scenario) bytesBaseline() (scenario, bool) {
	if tr, _ := s.agentTransport(); tr != tGRPC {
		return scenario{}, false
	}
	s.Transport = tBareGRPC
	return s, true
}

// sockLimitBaseline is the socket-limit scenario that a Unix-socket
// scenario, raw frames included, is also compared with.
func (s scenario) sockLimitBaseline() (scenario, bool) {
	if s.Transport != tRaw && baselineOf[s.Transport] != tRaw {
		return scenario{}, false
	}
	s.Transport = tSockLimit
	return s, true
}

// scenarios lists what a run measures, baselines first in each group so
// the table reads top-down.
func scenarios(o options) []scenario {
	type shape struct{ conns, inflight int }
	var out []scenario
	add := func(payload string, shapes []shape, transports ...string) {
		for _, sh := range shapes {
			for _, tr := range transports {
				out = append(out, scenario{Transport: tr, Conns: sh.conns, InFlight: sh.inflight, Payload: payload})
			}
		}
	}
	udsConn, grpcConn := tUDS+directSuffix, tGRPC+directSuffix
	if o.quick {
		add(payloadHeaders, []shape{{1, 1}}, tSockLimit, tRaw, tUDS)
		add(payloadHeaders, []shape{{1, 64}}, tSockLimit, tRaw, tUDS, tReverse, tBareGRPC, tBareMsg, tBarePB, tGRPC, tBareConnect, tConnect)
		add(payloadHeaders, []shape{{4, 64}}, tSockLimit, tRaw, tUDS, udsConn, tUDSCache)
		add(payloadBody, []shape{{1, 64}}, tSockLimit, tRaw, tUDS)
		add(payloadDecision, []shape{{1, 1}}, tRedisHit)
		add(payloadHeaders, []shape{{1, 64}}, refTransports...)
		add(payloadRequest, []shape{{4, 64}}, reliaTransports...)
	} else {
		add(payloadHeaders, []shape{{1, 1}}, tSockLimit, tRaw, tUDS, udsConn, tReverse, tBareGRPC, tBareMsg, tBarePB, tGRPC, tBareConnect, tConnect)
		add(payloadHeaders, []shape{{1, 64}}, tSockLimit, tRaw, tUDS, tReverse, tBareGRPC, tBareMsg, tBarePB, tGRPC, grpcConn, tBareConnect, tConnect)
		add(payloadHeaders, []shape{{1, 1}, {4, 64}}, tUDSCache)
		add(payloadHeaders, []shape{{4, 64}}, tSockLimit, tRaw, tUDS, udsConn, tReverse, tBareGRPC, tBareMsg, tBarePB, tGRPC, tBareConnect, tConnect)
		add(payloadBody, []shape{{1, 64}, {4, 64}}, tSockLimit, tRaw, tUDS)
		add(payloadBody, []shape{{1, 64}}, tBareGRPC, tBareMsg, tGRPC)
		add(payloadDecision, []shape{{1, 1}, {4, 16}}, tRedisHit)
		add(payloadHeaders, []shape{{1, 1}, {1, 64}, {4, 64}}, refTransports...)
		add(payloadBody, []shape{{1, 64}}, refTransports...)
		add(payloadRequest, []shape{{1, 1}, {4, 64}}, reliaTransports...)
	}
	if len(o.only) == 0 {
		return out
	}
	keep := map[scenario]bool{}
	for _, s := range out {
		for _, f := range o.only {
			if strings.Contains(s.name(), f) {
				keep[s] = true
				if b, ok := s.baseline(); ok {
					keep[b] = true
				}
				if b, ok := s.protobufBaseline(); ok {
					keep[b] = true
				}
				if b, ok := s.bytesBaseline(); ok {
					keep[b] = true
				}
				if b, ok := s.sockLimitBaseline(); ok {
					keep[b] = true
				}
			}
		}
	}
	return slices.DeleteFunc(out, func(s scenario) bool { return !keep[s] })
}

// env is everything a run starts: server processes, sockets, listeners.
type env struct {
	o    options
	logf func(string, ...any)
	dir  string

	agent     *child // the WAF agent: uds, grpc and connect
	agentAddr agentAddrs
	agentKind string   // what the agent process is, for the report
	agentCmd  []string // its command line without the listener flags

	shadowAgent *child // a second instance of it (uds-shadow10)
	shadowAddr  agentAddrs

	reverse      *reverseSetup
	reverseAgent *child

	baseline        *child
	rawPath         string
	bareGRPCAddr    string
	bareConnectAddr string
	barePBAddr      string

	slow     *child // the WAF policy answering after an hour: in-flight memory
	slowAddr agentAddrs

	cacheAgent *child // the WAF policy with cacheable decisions (uds-cache)
	cacheAddr  agentAddrs
	redis      *redisServer // the decision cache's shared store (redis-hit); nil without redis-server

	// requestSize is the frame size of each payload's event; baselines send
	// requests of that size.
	requestSize map[string]int
	closers     []func()
}

func (e *env) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
}

// selfArgv re-executes this binary as a child server.
func selfArgv(args ...string) ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return append([]string{exe, childCommand}, args...), nil
}

// setup starts the processes the scenarios need.
func setup(ctx context.Context, o options, scs []scenario, logf func(string, ...any)) (_ *env, err error) {
	dir, err := os.MkdirTemp("", "awb")
	if err != nil {
		return nil, err
	}
	e := &env{o: o, logf: logf, dir: dir}
	e.closers = append(e.closers, func() { _ = os.RemoveAll(dir) })
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	e.requestSize = map[string]int{
		payloadHeaders: frameSize(headersEvent(0)),
		payloadBody:    frameSize(bodyEvent(0)),
		payloadRequest: requestFrames(),
	}
	need := map[string]bool{}
	for _, s := range scs {
		need[s.Transport] = true
	}
	// The agent under test.
	e.agentAddr = agentAddrs{uds: filepath.Join(dir, "agent.sock")}
	agentFlags := []string{"-uds", e.agentAddr.uds, "-grpc", anyLoopbackPort, "-connect", anyLoopbackPort}
	var argv []string
	switch o.agent {
	case "self":
		e.agentKind = "agentbench serving examples/waf-agent/waf (same SDK, policy and options, borrowed events included)"
		if o.agentProf != "" {
			agentFlags = append(agentFlags, "-cpuprofile", o.agentProf)
		}
		if argv, err = selfArgv(append([]string{"agent"}, agentFlags...)...); err != nil {
			return nil, err
		}
	case "build", "":
		logf("building %s", wafAgentPackage)
		bin, err := buildWAFAgent(ctx, dir)
		if err != nil {
			return nil, err
		}
		e.agentKind = "examples/waf-agent (built for this run)"
		argv = append([]string{bin}, agentFlags...)
	default:
		e.agentKind = o.agent
		argv = append([]string{o.agent}, agentFlags...)
	}
	e.agentCmd = slices.Clone(argv[:len(argv)-len(agentFlags)])
	if e.agent, err = startChild(ctx, "waf-agent", argv, nil); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.agent.close)
	if e.agentAddr.grpc, err = e.agent.addr("grpc"); err != nil {
		return nil, err
	}
	if e.agentAddr.connect, err = e.agent.addr("connect"); err != nil {
		return nil, err
	}

	// Reverse connections: the proxy listens, an agent process dials in.
	if need[tReverse] {
		path := filepath.Join(dir, "reverse.sock")
		if e.reverse, err = newReverseSetup(path); err != nil {
			return nil, err
		}
		e.closers = append(e.closers, e.reverse.close)
		if argv, err = selfArgv("agent", "-reverse", "unix://"+path, "-conns", "4"); err != nil {
			return nil, err
		}
		if e.reverseAgent, err = startChild(ctx, "reverse agent", argv, nil); err != nil {
			return nil, err
		}
		// Stop the agent before the listener, so it does not redial.
		e.closers = append(e.closers, e.reverseAgent.close)
	}

	// Baselines.
	e.rawPath = filepath.Join(dir, "raw.sock")
	if argv, err = selfArgv("baseline", "-uds", e.rawPath, "-grpc", anyLoopbackPort,
		"-grpc-pb", anyLoopbackPort, "-connect", anyLoopbackPort); err != nil {
		return nil, err
	}
	if e.baseline, err = startChild(ctx, "baseline server", argv, nil); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.baseline.close)
	for name, to := range map[string]*string{"grpc": &e.bareGRPCAddr, "grpc-pb": &e.barePBAddr, "connect": &e.bareConnectAddr} {
		if *to, err = e.baseline.addr(name); err != nil {
			return nil, err
		}
	}

	// The cacheable agent, for the decision cache.
	if need[tUDSCache] {
		e.cacheAddr = agentAddrs{uds: filepath.Join(dir, "cache.sock")}
		if argv, err = selfArgv("agent", "-uds", e.cacheAddr.uds, "-cache-ttl", "1h"); err != nil {
			return nil, err
		}
		if e.cacheAgent, err = startChild(ctx, "cacheable agent", argv, nil); err != nil {
			return nil, err
		}
		e.closers = append(e.closers, e.cacheAgent.close)
	}

	if need[tUDSShadow] {
		if err = e.startShadowAgent(ctx); err != nil {
			return nil, err
		}
	}

	if need[tRedisHit] {
		if err = e.startRedis(ctx); err != nil {
			return nil, err
		}
	}

	// The slow agent parks requests for the in-flight memory measurement.
	e.slowAddr = agentAddrs{uds: filepath.Join(dir, "slow.sock")}
	if argv, err = selfArgv("agent", "-uds", e.slowAddr.uds, "-grpc", anyLoopbackPort,
		"-delay", "1h", "-max-concurrency", fmt.Sprint(4*o.inflight)); err != nil {
		return nil, err
	}
	if e.slow, err = startChild(ctx, "slow agent", argv, nil); err != nil {
		return nil, err
	}
	e.closers = append(e.closers, e.slow.close)
	if e.slowAddr.grpc, err = e.slow.addr("grpc"); err != nil {
		return nil, err
	}
	return e, nil
}

// bench runs every scenario o selects, o.reps times, interleaved: each
// repetition runs all scenarios once, so a noisy minute hurts every
// scenario alike rather than one.
func bench(ctx context.Context, o options, logf func(string, ...any)) (*Report, error) {
	scs := scenarios(o)
	if len(scs) == 0 {
		return nil, errors.New("no scenario matches --only")
	}
	e, err := setup(ctx, o, scs, logf)
	if err != nil {
		return nil, err
	}
	defer e.close()

	rep := &Report{Machine: machine(), Agent: e.agentKind,
		Driver: "pool.Pool (its default policy, least in flight, over the scenario's connections); *-conn scenarios drive transport.Conn directly"}
	rep.Options = RunOptions{Duration: o.duration.String(), Warmup: o.warmup.String(), Reps: o.reps, Quick: o.quick, GOGC: gogc()}
	samples := make([][]loopResult, len(scs))
	for r := range o.reps {
		for i, sc := range scs {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if e.skipped(sc) != "" {
				continue
			}
			var res loopResult
			var err error
			// Goroutines started for the scenario (connections' readers
			// and writers, workers) carry its name: filter a --cpuprofile
			// with -tagfocus 'scenario=uds 4x64 headers'.
			pprof.Do(ctx, pprof.Labels("scenario", sc.name()), func(ctx context.Context) {
				res, err = e.runOnce(ctx, sc)
			})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", sc.name(), err)
			}
			logf("rep %d %-26s %9.0f/s p50 %v errors %d", r+1, sc.name(),
				float64(res.events)/res.elapsed.Seconds(), res.hist.quantile(0.5), res.errors)
			samples[i] = append(samples[i], res)
		}
	}
	for i, sc := range scs {
		s := summarize(sc, e.requestSize[sc.Payload], samples[i])
		s.Skipped = e.skipped(sc)
		rep.Scenarios = append(rep.Scenarios, s)
	}
	rep.computeRatios()

	mem, err := e.measureMemory(ctx)
	if err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	rep.Memory = mem
	rep.checkTargets()
	return rep, nil
}

// firstExchangeTimeout bounds the exchange runOnce makes before measuring.
const firstExchangeTimeout = 30 * time.Second

// runOnce opens sc's connections, measures the load on them, and closes
// them.
func (e *env) runOnce(ctx context.Context, sc scenario) (loopResult, error) {
	for _, c := range []*child{e.agent, e.baseline, e.reverseAgent, e.cacheAgent, e.shadowAgent} {
		if c != nil {
			if err := c.alive(); err != nil {
				return loopResult{}, err
			}
		}
	}
	var res loopResult
	if sc.Transport == tSockLimit {
		drivers, closeAll, err := openSockLimit(ctx, e.rawPath, sc, e.requestSize[sc.Payload])
		if err != nil {
			return loopResult{}, err
		}
		res = measure(ctx, drivers, e.o.warmup, e.o.duration, e.baseline.pid())
		closeAll()
	} else {
		t, err := e.openTarget(ctx, sc)
		if err != nil {
			return loopResult{}, err
		}
		// One exchange before the clock starts, so that a connection set up
		// on first use (HTTP/2) is up even when warm-up is shorter than that.
		pctx, cancel := context.WithTimeout(ctx, firstExchangeTimeout)
		err = t.workers[0](pctx)
		cancel()
		if err != nil {
			t.close()
			return loopResult{}, fmt.Errorf("first exchange: %w", err)
		}
		res = closedLoop(ctx, t.workers, e.o.warmup, e.o.duration, t.pid)
		t.close()
	}
	if res.events == 0 {
		return res, fmt.Errorf("no exchange completed (%d errors, first: %v)", res.errors, res.firstErr)
	}
	return res, nil
}

func durationUS(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// applyGOGC applies --gogc to this process and, through the environment,
// to the agent processes it starts afterwards.
func applyGOGC(o options) {
	if o.gogc > 0 {
		debug.SetGCPercent(o.gogc)
		_ = os.Setenv("GOGC", strconv.Itoa(o.gogc))
	}
}

// gogc says what GOGC both processes run with.
func gogc() string {
	if v := os.Getenv("GOGC"); v != "" {
		return v
	}
	return "100"
}
