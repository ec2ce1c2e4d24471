// Command protoc-gen-go-agentuds generates agentwire's per-case code from the
// proto: the frame table of the framed transports (Unix socket, reverse
// connections) and everything that depends on which events there are.
//
// Every case of an envelope oneof carries a (sentinel.agent.v2.frame_type)
// option. For each message whose oneof cases carry it, the plugin emits
// frame-type constants and their names, a table for documentation and tests,
// typed encode/decode between frames and messages, and ClipBytes for unsafe
// decoding (file _uds.pb.go). Generation fails on a missing, out-of-range or
// duplicate id, so no hand-kept table can drift from the schema. For each
// such envelope it also emits a visitor interface with one method per case
// that is not an event, and its Visit function (file _visit.pb.go): the
// sessions of both sides implement those instead of switching over cases.
//
// Event cases also carry (sentinel.agent.v2.event): their EventType value,
// handler method and correlation id field. From them the plugin emits the
// event table, the envelope's EventType and EventCorrelationID accessors,
// the agent's EventHandler interface, UnimplementedEventHandler (which
// allows every event) and DispatchEvent, and EventVisitor with its base and
// VisitEvent for code that treats events by kind (file _events.pb.go).
// Adding an event to the schema and running buf generate is all the SDK
// needs.
//
// The direct= and decoder= options (see direct.go) ask for direct decoders
// of hot envelope cases, which read the fields they cover straight into an
// arena or recycled structs and decline everything else (file
// _direct.pb.go).
package main

import (
	"fmt"
	"os"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/types/pluginpb"
)

// version is stamped into every generated file's header.
const version = "v0.1.0"

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Println("protoc-gen-go-agentuds", version)
		return
	}
	protogen.Options{}.Run(run)
}

// run is the whole plugin minus stdin and stdout, so tests can drive it with
// a plugin built from a CodeGeneratorRequest.
func run(plugin *protogen.Plugin) error {
	plugin.SupportedFeatures = uint64(pluginpb.CodeGeneratorResponse_FEATURE_PROTO3_OPTIONAL)
	return generate(plugin)
}
