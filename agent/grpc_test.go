package agent

import (
	"context"
	"testing"

	"connectrpc.com/grpchealth"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// rpcTransports are the transports with a gRPC service.
var rpcTransports = []transport{{"grpc", startGRPC}, {"connect", startConnect}}

func forEachRPCTransport(t *testing.T, test func(t *testing.T, start func(t testing.TB, h Handler, opts ...Option) *env)) {
	t.Parallel()
	for _, tr := range rpcTransports {
		t.Run(tr.name, func(t *testing.T) {
			t.Parallel()
			test(t, tr.start)
		})
	}
}

func TestProcessEventUnary(t *testing.T) {
	forEachRPCTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		e := start(t, &kindHandler{})
		client := agentv2.NewAgentServiceV2Client(e.grpcCC)
		ctx := context.Background()
		out, err := client.ProcessEvent(ctx, requestHeaders(11, "u1"))
		require.NoError(t, err)
		assert.EqualValues(t, 11, out.EventId)
		assert.Equal(t, "u1", out.GetResponse().GetCorrelationId())
		assert.EqualValues(t, 401, out.GetResponse().GetBlock().GetStatus())

		out, err = client.ProcessEvent(ctx, &agentv2.ProxyToAgent{EventId: 12, Message: &agentv2.ProxyToAgent_Ping{Ping: &agentv2.Ping{Sequence: 3}}})
		require.NoError(t, err)
		assert.EqualValues(t, 3, out.GetPong().GetSequence())

		out, err = client.ProcessEvent(ctx, handshakeMsg(0))
		require.NoError(t, err)
		assert.True(t, out.GetHandshake().GetSuccess())

		_, err = client.ProcessEvent(ctx, &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_Cancel{Cancel: &agentv2.CancelRequest{}}})
		assert.Equal(t, codes.InvalidArgument, status.Code(err))
	})
}

func TestControlStreamUnimplemented(t *testing.T) {
	forEachRPCTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		e := start(t, Base{})
		cs, err := agentv2.NewAgentServiceV2Client(e.grpcCC).ControlStream(context.Background())
		require.NoError(t, err)
		_, err = cs.Recv()
		assert.Equal(t, codes.Unimplemented, status.Code(err))
		assert.Contains(t, status.Convert(err).Message(), "ProcessStream")
	})
}

func TestServiceName(t *testing.T) {
	forEachRPCTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		const name = "zentinel.agent.v2.AgentServiceV2"
		e := start(t, Base{}, WithServiceName(name))
		c := dialGRPC(t, e.grpcCC, name)
		require.True(t, c.handshake().GetSuccess())
		c.Send(requestHeaders(1, "z"))
		assert.Equal(t, "z", c.response().GetResponse().GetCorrelationId())
		// The default name is not served.
		cs, err := agentv2.NewAgentServiceV2Client(e.grpcCC).ProcessStream(context.Background())
		require.NoError(t, err)
		_, err = cs.Recv()
		assert.Equal(t, codes.Unimplemented, status.Code(err))
	})
}

func TestHalfCloseAnswersPending(t *testing.T) {
	forEachRPCTransport(t, func(t *testing.T, start func(testing.TB, Handler, ...Option) *env) {
		e := start(t, slowHandler{})
		c := e.dialReady()
		for i := 1; i <= 5; i++ {
			c.Send(requestHeaders(uint64(i), "h"))
		}
		require.NoError(t, c.closeSend())
		assert.Len(t, c.responses(5), 5)
		c.waitClosed()
	})
}

func TestGRPCReflection(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"sentinel.agent.v2.AgentServiceV2", "zentinel.agent.v2.AgentServiceV2"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := startConnect(t, Base{}, WithServiceName(name))
			stream, err := reflectionpb.NewServerReflectionClient(e.grpcCC).ServerReflectionInfo(context.Background())
			require.NoError(t, err)
			defer stream.CloseSend()
			require.NoError(t, stream.Send(&reflectionpb.ServerReflectionRequest{
				MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
			}))
			resp, err := stream.Recv()
			require.NoError(t, err)
			var names []string
			for _, s := range resp.GetListServicesResponse().GetService() {
				names = append(names, s.GetName())
			}
			assert.Equal(t, []string{name}, names)
			require.NoError(t, stream.Send(&reflectionpb.ServerReflectionRequest{
				MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: name},
			}))
			resp, err = stream.Recv()
			require.NoError(t, err)
			var files descriptorpb.FileDescriptorSet
			for _, b := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
				fd := &descriptorpb.FileDescriptorProto{}
				require.NoError(t, proto.Unmarshal(b, fd))
				files.File = append(files.File, fd)
			}
			// The files returned describe the service and its messages.
			reg, err := protodesc.NewFiles(&files)
			require.NoError(t, err)
			d, err := reg.FindDescriptorByName(protoreflect.FullName(name))
			require.NoError(t, err)
			m := d.(protoreflect.ServiceDescriptor).Methods().ByName("ProcessStream")
			require.NotNil(t, m)
			assert.EqualValues(t, "sentinel.agent.v2.ProxyToAgent", m.Input().FullName())
		})
	}
}

func TestGRPCHealth(t *testing.T) {
	t.Parallel()
	e := startConnect(t, Base{})
	client := healthpb.NewHealthClient(e.grpcCC)
	for _, svc := range []string{"", "sentinel.agent.v2.AgentServiceV2"} {
		resp, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		require.NoError(t, err)
		assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus(), "service %q", svc)
	}
	require.NoError(t, e.srv.Shutdown(context.Background()))
	got, err := e.srv.checker.Check(context.Background(), &grpchealth.CheckRequest{})
	require.NoError(t, err)
	assert.Equal(t, grpchealth.StatusNotServing, got.Status)
}
