package transport_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/transport"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
)

// The send benchmarks measure the proxy side alone: the agent is this test
// binary re-executed (benchAgentEnv names its directory), a minimal echo
// agent in its own process, so the CPU time the benchmark reports per
// event (cpu-ns/op, from getrusage) is the proxy's only.

// benchAgentEnv, when set, makes the test binary serve as the benchmark's
// echo agent until its stdin closes: on the Unix socket agent.sock in the
// directory it names, and over gRPC on a loopback port it writes to the
// file grpc.addr there.
const benchAgentEnv = "AGENTWIRE_BENCH_AGENT"

// serveBenchAgent is the echo agent's main: it answers the handshake and
// then every event with an allow and one header mutation (what the
// example WAF answers).
func serveBenchAgent(dir string) error {
	ln, err := net.Listen("unix", filepath.Join(dir, "agent.sock"))
	if err != nil {
		return err
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	gs := grpc.NewServer(grpc.ForceServerCodecV2(benchCodec{}))
	agentv2.RegisterAgentServiceV2Server(gs, benchGRPCAgent{})
	go func() { _ = gs.Serve(tl) }()
	tmp := filepath.Join(dir, "grpc.addr.tmp")
	if err := os.WriteFile(tmp, []byte(tl.Addr().String()), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "grpc.addr")); err != nil {
		return err
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = ln.Close()
		gs.Stop()
	}()
	for {
		nc, err := ln.Accept()
		if err != nil {
			return nil
		}
		go func() {
			defer nc.Close()
			_ = echoAgentConn(nc)
		}()
	}
}

// benchCodec encodes and decodes with vtprotobuf.
type benchCodec struct{}

func (benchCodec) Name() string { return "proto" }

func (benchCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(interface{ MarshalVT() ([]byte, error) })
	if !ok {
		return nil, fmt.Errorf("cannot marshal %T", v)
	}
	b, err := m.MarshalVT()
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

func (benchCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(interface{ UnmarshalVT([]byte) error })
	if !ok {
		return fmt.Errorf("cannot unmarshal into %T", v)
	}
	return m.UnmarshalVT(data.Materialize())
}

// benchGRPCAgent answers ProcessStream as echoAgentConn answers frames.
type benchGRPCAgent struct {
	agentv2.UnimplementedAgentServiceV2Server
}

func (benchGRPCAgent) ProcessStream(stream agentv2.AgentServiceV2_ProcessStreamServer) error {
	for {
		in, err := stream.Recv()
		if err != nil {
			return nil
		}
		if out := echoAnswer(in); out != nil {
			if err := stream.Send(out); err != nil {
				return err
			}
		}
	}
}

// echoAnswer is the echo agent's answer to in, or nil.
func echoAnswer(in *agentv2.ProxyToAgent) *agentv2.AgentToProxy {
	switch m := in.GetMessage().(type) {
	case *agentv2.ProxyToAgent_Handshake:
		return &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Handshake{Handshake: &agentv2.HandshakeResponse{
			ProtocolVersion: transport.ProtocolVersion, Success: true, Encoding: "protobuf",
			Capabilities: &agentv2.AgentCapabilities{
				ProtocolVersion: transport.ProtocolVersion, AgentId: "bench-echo",
				Features: &agentv2.AgentFeatures{EchoesEventId: true, ConcurrentRequests: 1 << 20},
			},
		}}}
	case *agentv2.ProxyToAgent_Ping:
		return &agentv2.AgentToProxy{EventId: in.GetEventId(), Message: &agentv2.AgentToProxy_Pong{Pong: &agentv2.Pong{Sequence: m.Ping.GetSequence()}}}
	}
	corr, ok := in.EventCorrelationID()
	if !ok {
		return nil
	}
	return &agentv2.AgentToProxy{EventId: in.GetEventId(), Message: &agentv2.AgentToProxy_Response{Response: &agentv2.AgentResponse{
		CorrelationId:  corr,
		Decision:       &agentv2.AgentResponse_Allow{Allow: &agentv2.AllowDecision{}},
		RequestHeaders: []*agentv2.HeaderOp{{Operation: &agentv2.HeaderOp_Set{Set: &agentv2.Header{Name: "x-waf", Value: "pass"}}}},
	}}}
}

func echoAgentConn(nc net.Conn) error {
	br := bufio.NewReaderSize(nc, 64<<10)
	var (
		in  agentv2.ProxyToAgent
		out []byte
	)
	for {
		hdr, err := br.Peek(agentv2.FrameHeaderSize)
		if err != nil {
			return err
		}
		n := int(binary.BigEndian.Uint32(hdr))
		frame, err := br.Peek(4 + n)
		if err != nil {
			return err
		}
		// Decoded in place: in is used up before the next read.
		if err := codec.Decode(&in, agentv2.FrameType(frame[4]), frame[agentv2.FrameHeaderSize:], agentv2.IsProxyToAgentFrame, true); err != nil {
			return err
		}
		if reply := echoAnswer(&in); reply != nil {
			if out, err = codec.AppendFrame(out, reply, 0); err != nil {
				return err
			}
		}
		_, _ = br.Discard(4 + n)
		if !frameBuffered(br) {
			if _, err := nc.Write(out); err != nil {
				return err
			}
			out = out[:0]
		}
	}
}

// frameBuffered reports whether br holds a whole frame.
func frameBuffered(br *bufio.Reader) bool {
	if br.Buffered() < 4 {
		return false
	}
	hdr, _ := br.Peek(4)
	return br.Buffered() >= 4+int(binary.BigEndian.Uint32(hdr))
}

// startBenchAgent runs the echo agent process and returns its Unix socket
// path and gRPC address.
func startBenchAgent(b *testing.B) (path, grpcAddr string) {
	b.Helper()
	dir, err := os.MkdirTemp("", "awb")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	path = filepath.Join(dir, "agent.sock")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchAgentEnv+"="+dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	for start := time.Now(); ; time.Sleep(5 * time.Millisecond) {
		addr, err := os.ReadFile(filepath.Join(dir, "grpc.addr"))
		if _, serr := os.Stat(path); serr == nil && err == nil {
			return path, string(addr)
		}
		if time.Since(start) > 10*time.Second {
			b.Fatal("bench agent did not start")
		}
	}
}

// benchHeadersEvent is a request-headers event of about 500 bytes with 20
// headers, as cmd/agentbench sends.
func benchHeadersEvent(worker int) *agentv2.ProxyToAgent {
	names := []string{
		"host", "user-agent", "accept", "accept-encoding", "accept-language",
		"content-type", "content-length", "connection", "cache-control", "origin",
		"referer", "cookie", "x-request-id", "x-forwarded-for", "x-real-ip",
		"dnt", "pragma", "te", "via", "date",
	}
	values := []string{
		"a.io", "curl/8", "*/*", "gzip", "en",
		"text/json", "0", "close", "no-cache", "https://a.io",
		"https://a.io/", "s=1", strconv.Itoa(worker), "10.0.0.1", "10.0.0.1",
		"1", "no-cache", "trailers", "1.1 lb", "Thu, 27 Nov 2026",
	}
	hs := make([]*agentv2.Header, len(names))
	for i := range names {
		hs[i] = &agentv2.Header{Name: names[i], Value: values[i]}
	}
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{
			CorrelationId: fmt.Sprintf("c%06d", worker), ClientIp: "10.0.0.1", ClientPort: 51234,
			Protocol: "HTTP/1.1", TimestampMs: 1764000000000,
		},
		Method: "GET", Uri: "/api/items?id=42", HttpVersion: "HTTP/1.1", Headers: hs,
	}}}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkUnixSend(b *testing.B) {
	benchSend(b, func(ctx context.Context, path, _ string) (transport.Conn, error) {
		return transport.DialUnix(ctx, path)
	})
}

func BenchmarkGRPCSend(b *testing.B) {
	benchSend(b, func(ctx context.Context, _, addr string) (transport.Conn, error) {
		return transport.DialGRPC(ctx, addr)
	})
}

// processSyscalls returns how many read and write system calls this
// process has made, reads that found nothing included (both 0 where
// /proc/self/io is missing): the batching of the framed wire shows in
// them.
func processSyscalls() (reads, writes uint64) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		n, _ := strconv.ParseUint(v, 10, 64)
		switch k {
		case "syscr":
			reads = n
		case "syscw":
			writes = n
		}
	}
	return reads, writes
}

// benchSend drives connections opened by dial with 1 × 1, 1 × 64 and
// 4 × 64 events in flight.
func benchSend(b *testing.B, dial func(ctx context.Context, path, grpcAddr string) (transport.Conn, error)) {
	for _, sc := range []struct{ conns, inflight int }{{1, 1}, {1, 64}, {4, 64}} {
		b.Run(fmt.Sprintf("%dx%d", sc.conns, sc.inflight), func(b *testing.B) {
			path, addr := startBenchAgent(b)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			conns := make([]transport.Conn, sc.conns)
			for i := range conns {
				c, err := dial(ctx, path, addr)
				if err != nil {
					b.Fatal(err)
				}
				conns[i] = c
				defer c.Close(context.Background())
			}
			workers := sc.conns * sc.inflight
			events := make([]*agentv2.ProxyToAgent, workers)
			for i := range events {
				events[i] = benchHeadersEvent(i)
			}
			var (
				next    atomic.Int64
				wg      sync.WaitGroup
				errOnce sync.Once
				failed  error
			)
			run := func(n int64) {
				next.Store(0)
				for w := range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						c, ev := conns[w%len(conns)], events[w]
						for next.Add(1) <= n {
							resp, err := c.Send(ctx, ev)
							if err == nil && resp.GetAllow() == nil {
								err = errors.New("no allow decision")
							}
							if err != nil {
								errOnce.Do(func() { failed = err })
								return
							}
						}
					}()
				}
				wg.Wait()
			}
			run(int64(workers * 100)) // warm up
			b.ReportAllocs()
			b.ResetTimer()
			cpu := processCPU()
			r0, w0 := processSyscalls()
			run(int64(b.N))
			cpu = processCPU() - cpu
			r1, w1 := processSyscalls()
			b.StopTimer()
			if failed != nil {
				b.Fatal(agentwire.CodeOf(failed), failed)
			}
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			b.ReportMetric(float64(r1-r0)/float64(b.N), "reads/op")
			b.ReportMetric(float64(w1-w0)/float64(b.N), "writes/op")
		})
	}
}
