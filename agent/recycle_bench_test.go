package agent

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/mem"

	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/internal/wire"
)

// BenchmarkFramedRecv measures receiving and releasing a 20-header
// request-headers event on a framed stream, against what the stream did
// before recycling: a copy per frame, vtprotobuf pools and their Reset.
func BenchmarkFramedRecv(b *testing.B) {
	b.Run("recycled", func(b *testing.B) {
		f := newLoopStream(b, 64, headersEvent20)
		b.ReportAllocs()
		for b.Loop() {
			m, err := f.Recv()
			if err != nil {
				b.Fatal(err)
			}
			f.Release(m)
		}
	})
	b.Run("clone+vtpool", func(b *testing.B) {
		f := newLoopStream(b, 64, headersEvent20)
		b.ReportAllocs()
		for b.Loop() {
			t, payload, err := f.R.ReadFrame()
			if err != nil {
				b.Fatal(err)
			}
			m := agentv2.ProxyToAgentFromVTPool()
			if err := codec.Decode(m, t, bytes.Clone(payload), agentv2.IsProxyToAgentFrame, true); err != nil {
				b.Fatal(err)
			}
			m.ClipBytes()
			m.ReturnToVTPool()
		}
	})
}

// BenchmarkGRPCUnmarshal measures the gRPC codec decoding a 20-header event
// into a stream's target and releasing it, against decoding into a pooled
// message from a materialised copy.
func BenchmarkGRPCUnmarshal(b *testing.B) {
	data, err := headersEvent20(7).MarshalVT()
	require.NoError(b, err)
	in := memSlice(data)
	b.Run("recycled", func(b *testing.B) {
		var tg rpcTarget
		b.ReportAllocs()
		for b.Loop() {
			tg.prepare()
			if err := (wire.GRPCCodec{}).Unmarshal(in, &tg); err != nil {
				b.Fatal(err)
			}
			releaseEnvelope(tg.take())
		}
	})
	b.Run("materialize+vtpool", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m := agentv2.ProxyToAgentFromVTPool()
			if err := (wire.GRPCCodec{}).Unmarshal(in, m); err != nil {
				b.Fatal(err)
			}
			m.ReturnToVTPool()
		}
	})
}

// BenchmarkGRPCMarshal measures the gRPC codec encoding a decision with
// one header mutation from a stream's send target, against encoding the
// message itself (three allocations).
func BenchmarkGRPCMarshal(b *testing.B) {
	reply := newReply(7, "c000007", AllowSetRequestHeader("x-waf", "pass"), nil)
	b.Run("target", func(b *testing.B) {
		tg := newSendTarget()
		tg.AgentToProxy = reply
		b.ReportAllocs()
		for b.Loop() {
			bs, err := wire.GRPCCodec{}.Marshal(&tg)
			if err != nil {
				b.Fatal(err)
			}
			bs.Free()
		}
	})
	b.Run("message", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			bs, err := wire.GRPCCodec{}.Marshal(reply)
			if err != nil {
				b.Fatal(err)
			}
			bs.Free()
		}
	})
}

func memSlice(b []byte) mem.BufferSlice { return mem.BufferSlice{mem.SliceBuffer(b)} }
