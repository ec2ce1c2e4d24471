package wire

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/gen/sentinel/agent/v2/agentv2connect"
)

const zentinel = "zentinel.agent.v2.AgentServiceV2"

func TestProcedure(t *testing.T) {
	t.Parallel()
	assert.Equal(t, agentv2connect.AgentServiceV2ProcessStreamProcedure,
		Procedure(agentv2connect.AgentServiceV2Name, agentv2connect.AgentServiceV2ProcessStreamProcedure))
	assert.Equal(t, "/"+zentinel+"/ProcessEvent", Procedure(zentinel, agentv2.AgentServiceV2_ProcessEvent_FullMethodName))
	desc := ServiceDesc(zentinel)
	assert.Equal(t, zentinel, desc.ServiceName)
	assert.Equal(t, agentv2connect.AgentServiceV2Name, agentv2.AgentServiceV2_ServiceDesc.ServiceName, "the generated description is not changed")
}

// recordingConn records the methods the generated client calls.
type recordingConn struct{ methods []string }

func (c *recordingConn) Invoke(_ context.Context, method string, _, _ any, _ ...grpc.CallOption) error {
	c.methods = append(c.methods, method)
	return nil
}

func (c *recordingConn) NewStream(_ context.Context, _ *grpc.StreamDesc, method string, _ ...grpc.CallOption) (grpc.ClientStream, error) {
	c.methods = append(c.methods, method)
	return nil, nil
}

// TestNewServiceClient: the generated client calls the methods under the
// service name given.
func TestNewServiceClient(t *testing.T) {
	t.Parallel()
	for _, name := range []string{agentv2connect.AgentServiceV2Name, zentinel} {
		cc := &recordingConn{}
		c := NewServiceClient(cc, name)
		_, err := c.ProcessStream(t.Context())
		require.NoError(t, err)
		_, err = c.ProcessEvent(t.Context(), &agentv2.ProxyToAgent{})
		require.NoError(t, err)
		assert.Equal(t, []string{"/" + name + "/ProcessStream", "/" + name + "/ProcessEvent"}, cc.methods)
	}
}
