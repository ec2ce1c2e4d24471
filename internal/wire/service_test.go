package wire

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"
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

// TestConnectRenamed: the generated Connect client calls, and the
// generated handler serves, the methods under the service name given,
// below a base path too.
func TestConnectRenamed(t *testing.T) {
	t.Parallel()
	for _, name := range []string{agentv2connect.AgentServiceV2Name, zentinel} {
		path, h := ConnectHandler(name, echoHandler{})
		assert.Equal(t, "/"+name+"/", path)
		var seen []string
		mux := http.NewServeMux()
		mux.Handle("/base"+path, http.StripPrefix("/base", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen = append(seen, r.URL.Path)
			h.ServeHTTP(w, r)
		})))
		srv := httptest.NewServer(mux)
		c := NewConnectClient(srv.Client(), srv.URL+"/base/", name)
		resp, err := c.ProcessEvent(t.Context(), connect.NewRequest(&agentv2.ProxyToAgent{EventId: 7}))
		srv.Close()
		require.NoError(t, err)
		assert.Equal(t, uint64(7), resp.Msg.GetEventId())
		assert.Equal(t, []string{"/" + name + "/ProcessEvent"}, seen)
	}
}

// echoHandler answers ProcessEvent with the event's id.
type echoHandler struct {
	agentv2connect.UnimplementedAgentServiceV2Handler
}

func (echoHandler) ProcessEvent(_ context.Context, req *connect.Request[agentv2.ProxyToAgent]) (*connect.Response[agentv2.AgentToProxy], error) {
	return connect.NewResponse(&agentv2.AgentToProxy{EventId: req.Msg.GetEventId()}), nil
}
