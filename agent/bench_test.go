package agent

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire"
)

// benchWindow is how many events the benchmark proxy keeps in flight.
const benchWindow = 256

// BenchmarkEvents measures events answered per second on one connection,
// with benchWindow events in flight, over each transport.
func BenchmarkEvents(b *testing.B) {
	for _, tr := range transports {
		b.Run(tr.name, func(b *testing.B) {
			e := tr.start(b, Base{}, WithMaxConcurrency(2*benchWindow))
			var send func(*agentv2.ProxyToAgent) error
			var in <-chan *agentv2.AgentToProxy
			if tr.name == "uds" {
				send, in = benchFramedClient(b, e.path)
			} else {
				c := e.dialReady()
				send, in = c.send, c.in
			}
			events := make([]*agentv2.ProxyToAgent, benchWindow)
			for i := range events {
				events[i] = requestHeaders(0, fmt.Sprint("bench-", i))
			}
			b.ReportAllocs()
			b.ResetTimer()
			errc := make(chan error, 1)
			credit := make(chan struct{}, benchWindow)
			for range benchWindow {
				credit <- struct{}{}
			}
			go func() {
				for i := range b.N {
					<-credit
					m := events[i%benchWindow]
					m.EventId = uint64(i + 1)
					if err := send(m); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			for got := 0; got < b.N; {
				m, ok := <-in
				if !ok {
					b.Fatal("connection ended")
				}
				if m.GetResponse() != nil {
					got++
					credit <- struct{}{}
				}
			}
			require.NoError(b, <-errc)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// benchFramedClient is a framed proxy connection with a batching writer,
// after the handshake.
func benchFramedClient(b *testing.B, path string) (func(*agentv2.ProxyToAgent) error, <-chan *agentv2.AgentToProxy) {
	nc, err := net.Dial("unix", path)
	require.NoError(b, err)
	require.NoError(b, codec.WriteFrameTo(nc, handshakeMsg(0), 0))
	r := codec.NewReader(nc, 0)
	hs := &agentv2.AgentToProxy{}
	require.NoError(b, r.ReadAgentToProxy(hs))
	require.True(b, hs.GetHandshake().GetSuccess())
	w := wire.NewFrameWriter(nc, 0, 0)
	ctx, cancel := context.WithCancel(context.Background())
	wdone := make(chan struct{})
	go func() {
		defer close(wdone)
		_ = w.Run(ctx)
	}()
	in := make(chan *agentv2.AgentToProxy, 4096)
	rdone := make(chan struct{})
	go func() {
		defer close(rdone)
		defer close(in)
		for {
			m := &agentv2.AgentToProxy{}
			if err := r.ReadAgentToProxy(m); err != nil {
				return
			}
			in <- m
		}
	}()
	b.Cleanup(func() {
		cancel()
		<-wdone
		_ = nc.Close()
		<-rdone
	})
	return func(m *agentv2.ProxyToAgent) error { return w.Write(ctx, m) }, in
}

// sent is what the benchmark needs of a message the session sent: streams
// encode before Send returns, after which the session reuses the message.
type sent struct {
	handshake, response, failed bool
	id                          uint64
}

func sentOf(m *agentv2.AgentToProxy) sent {
	r := m.GetResponse()
	return sent{handshake: m.GetHandshake() != nil, response: r != nil, failed: r.GetError() != nil, id: m.GetEventId()}
}

// memStream is an in-memory stream: the benchmark feeds Recv and counts
// what Send gets, so BenchmarkSession measures the session core alone.
type memStream struct {
	in      chan *agentv2.ProxyToAgent
	out     chan sent
	stopped chan struct{}
	once    sync.Once
}

func (m *memStream) Recv() (*agentv2.ProxyToAgent, error) {
	select {
	case msg := <-m.in:
		return msg, nil
	case <-m.stopped:
		return nil, errConnClosed
	}
}

func (m *memStream) Send(_ context.Context, msg *agentv2.AgentToProxy) error {
	select {
	case m.out <- sentOf(msg):
		return nil
	case <-m.stopped:
		return errConnClosed
	}
}

// Release keeps nothing: the benchmark reuses its events.
func (m *memStream) Release(*agentv2.ProxyToAgent) {}

func (m *memStream) CloseRecv() { m.Abort() }
func (m *memStream) Abort()     { m.once.Do(func() { close(m.stopped) }) }

// BenchmarkSession measures the session core: dispatch, workers, replies.
func BenchmarkSession(b *testing.B) {
	srv, err := NewServer(Base{}, WithLogger(quietLogger()), WithMaxConcurrency(2*benchWindow))
	require.NoError(b, err)
	defer srv.Close()
	st := &memStream{in: make(chan *agentv2.ProxyToAgent, benchWindow), out: make(chan sent, benchWindow), stopped: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- srv.serveRPC(context.Background(), st, newRPCEnd()) }()
	st.in <- handshakeMsg(0)
	for m := range st.out {
		if m.handshake {
			break
		}
	}
	events := make([]*agentv2.ProxyToAgent, 2*benchWindow)
	for i := range events {
		events[i] = requestHeaders(uint64(i+1), fmt.Sprint("bench-", i))
	}
	credit := make(chan struct{}, benchWindow)
	for range benchWindow {
		credit <- struct{}{}
	}
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		for i := range b.N {
			<-credit
			st.in <- events[i%len(events)]
		}
	}()
	for got := 0; got < b.N; {
		m := <-st.out
		if m.response {
			if m.failed {
				b.Fatalf("event %d failed", m.id)
			}
			got++
			credit <- struct{}{}
		}
	}
	b.StopTimer()
	st.Abort()
	<-done
}
