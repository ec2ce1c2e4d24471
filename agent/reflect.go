package agent

import (
	"errors"
	"strings"

	"connectrpc.com/grpcreflect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
	"github.com/agentwire/agentwire/gen/sentinel/agent/v2/agentv2connect"
)

// reflector describes the agent service under its configured name; another
// name than the schema's is declared in a small file importing the schema,
// so clients resolve its methods to the schema's messages.
func (srv *Server) reflector() *grpcreflect.Reflector {
	name := srv.cfg.serviceName
	if name == agentv2connect.AgentServiceV2Name {
		return grpcreflect.NewStaticReflector(name)
	}
	local := new(protoregistry.Files)
	fd, err := renamedServiceFile(name)
	if err == nil {
		err = local.RegisterFile(fd)
	}
	if err != nil {
		srv.cfg.logger.Warn("agent: reflection cannot describe the renamed service", "service", name, "error", err)
		return grpcreflect.NewStaticReflector(name)
	}
	return grpcreflect.NewReflector(
		grpcreflect.NamerFunc(func() []string { return []string{name} }),
		grpcreflect.WithDescriptorResolver(chainResolver{local, protoregistry.GlobalFiles}),
	)
}

// renamedServiceFile declares AgentServiceV2's methods as service name
// (package.Service) in a file of its own.
func renamedServiceFile(name string) (protoreflect.FileDescriptor, error) {
	pkg, svc := "", name
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		pkg, svc = name[:i], name[i+1:]
	}
	if svc == "" {
		return nil, errors.New("empty service name")
	}
	schema := agentv2.File_sentinel_agent_v2_agent_proto
	sd := protodesc.ToServiceDescriptorProto(schema.Services().ByName("AgentServiceV2"))
	sd.Name = proto.String(svc)
	path := strings.ReplaceAll(pkg, ".", "/")
	if path != "" {
		path += "/"
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String(path + "agentwire_" + strings.ToLower(svc) + ".proto"),
		Package:    proto.String(pkg),
		Dependency: []string{schema.Path()},
		Service:    []*descriptorpb.ServiceDescriptorProto{sd},
		Syntax:     proto.String("proto3"),
	}
	return protodesc.NewFile(fdp, protoregistry.GlobalFiles)
}

// chainResolver looks descriptors up in each resolver in turn.
type chainResolver []protodesc.Resolver

func (c chainResolver) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	for _, r := range c {
		if fd, err := r.FindFileByPath(path); err == nil {
			return fd, nil
		}
	}
	return nil, protoregistry.NotFound
}

func (c chainResolver) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	for _, r := range c {
		if d, err := r.FindDescriptorByName(name); err == nil {
			return d, nil
		}
	}
	return nil, protoregistry.NotFound
}
