package wire

import (
	"context"
	"net/http"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/grpc"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/gen/sentinel/agent/v2/agentv2connect"
)

// Both sides speak the agent service through its generated code (agentv2,
// agentv2connect), under the schema's service name or under another one
// (transport.WithServiceName, agent.WithServiceName: Zentinel's): the
// methods and messages are the same whatever the name.

// Procedure returns procedure, a generated method or procedure name
// ("/sentinel.agent.v2.AgentServiceV2/ProcessStream"), under service.
func Procedure(service, procedure string) string {
	if service == agentv2connect.AgentServiceV2Name {
		return procedure
	}
	return "/" + service + strings.TrimPrefix(procedure, "/"+agentv2connect.AgentServiceV2Name)
}

// ServiceDesc returns the generated gRPC service description under service,
// for grpc.ServiceRegistrar.RegisterService.
func ServiceDesc(service string) *grpc.ServiceDesc {
	desc := agentv2.AgentServiceV2_ServiceDesc
	desc.ServiceName = service
	return &desc
}

// NewServiceClient returns the generated gRPC client, calling service's
// methods on cc.
func NewServiceClient(cc grpc.ClientConnInterface, service string) agentv2.AgentServiceV2Client {
	if service != agentv2connect.AgentServiceV2Name {
		cc = renamedConn{cc, service}
	}
	return agentv2.NewAgentServiceV2Client(cc)
}

// renamedConn calls the agent service's methods under another name.
type renamedConn struct {
	grpc.ClientConnInterface
	service string
}

func (c renamedConn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.ClientConnInterface.Invoke(ctx, Procedure(c.service, method), args, reply, opts...)
}

func (c renamedConn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.ClientConnInterface.NewStream(ctx, desc, Procedure(c.service, method), opts...)
}

// NewConnectClient returns the generated Connect client, calling service's
// methods at baseURL through hc's transport.
func NewConnectClient(hc *http.Client, baseURL, service string, opts ...connect.ClientOption) agentv2connect.AgentServiceV2Client {
	if service != agentv2connect.AgentServiceV2Name {
		rt := hc.Transport
		hc = &http.Client{Transport: RoundTripFunc(func(req *http.Request) (*http.Response, error) {
			req = req.Clone(req.Context())
			p := req.URL.Path
			i := strings.LastIndex(p, "/"+agentv2connect.AgentServiceV2Name+"/")
			req.URL.Path = p[:i] + Procedure(service, p[i:])
			return rt.RoundTrip(req)
		})}
	}
	return agentv2connect.NewAgentServiceV2Client(hc, baseURL, opts...)
}

// ConnectHandler returns the generated Connect handler of svc under
// service, and the path to mount it on.
func ConnectHandler(service string, svc agentv2connect.AgentServiceV2Handler, opts ...connect.HandlerOption) (string, http.Handler) {
	path, h := agentv2connect.NewAgentServiceV2Handler(svc, opts...)
	if service == agentv2connect.AgentServiceV2Name {
		return path, h
	}
	// StripPrefix hands on a copy of the request, free to change.
	return "/" + service + "/", http.StripPrefix("/"+service, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.URL.Path = "/" + agentv2connect.AgentServiceV2Name + r.URL.Path
		r.URL.RawPath = ""
		h.ServeHTTP(w, r)
	}))
}

// RoundTripFunc is an http.RoundTripper in a function.
type RoundTripFunc func(*http.Request) (*http.Response, error)

// RoundTrip calls f.
func (f RoundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
