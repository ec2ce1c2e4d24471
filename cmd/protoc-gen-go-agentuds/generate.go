package main

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// optionName is the full name of the extension that declares frame ids.
const optionName = "sentinel.agent.v2.frame_type"

// frameCase is one oneof case and the frame type id declared on it.
type frameCase struct {
	field *protogen.Field
	id    uint64
}

// envelope is a message whose oneof cases are framed.
type envelope struct {
	msg   *protogen.Message
	oneof *protogen.Oneof
	cases []frameCase
}

func generate(plugin *protogen.Plugin) error {
	num, framed := findOptionNumber(plugin)
	events, err := findEventOption(plugin)
	if err != nil {
		return err
	}
	params, err := parseDirectParams(plugin.Request.GetParameter())
	if err != nil {
		return err
	}
	direct, err := params.resolve(plugin)
	if err != nil {
		return err
	}
	for _, f := range plugin.Files {
		if !f.Generate {
			continue
		}
		if len(direct.decoders[f]) > 0 {
			emitDirect(plugin, f, direct)
		}
		// With neither option in the request there is nothing of ours.
		var env *eventEnvelope
		if events != nil {
			if env, err = collectEvents(f, events); err != nil {
				return err
			}
		}
		if framed {
			envs, err := collect(f, num)
			if err != nil {
				return err
			}
			if len(envs) > 0 {
				emit(plugin, f, envs)
				emitVisitors(plugin, f, envs, env)
			}
		}
		if env != nil {
			emitEvents(plugin, f, env)
		}
	}
	return nil
}

// findOptionNumber locates the frame_type extension among the request's files,
// so the plugin reads the field number from the schema instead of assuming it.
func findOptionNumber(plugin *protogen.Plugin) (protowire.Number, bool) {
	for _, f := range plugin.Files {
		exts := f.Desc.Extensions()
		for i := 0; i < exts.Len(); i++ {
			x := exts.Get(i)
			if string(x.FullName()) == optionName && x.ContainingMessage().FullName() == "google.protobuf.FieldOptions" {
				return x.Number(), true
			}
		}
	}
	return 0, false
}

// frameID reads the option from a field's options without needing the
// extension registered (the plugin must build before gen/ exists).
func frameID(field *protogen.Field, num protowire.Number) (uint64, bool, error) {
	opts := field.Desc.Options()
	if opts == nil {
		return 0, false, nil
	}
	m := opts.ProtoReflect()
	// A registered extension would appear as a known field; look there first.
	var (
		found bool
		val   uint64
	)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.IsExtension() && fd.Number() == num {
			found, val = true, v.Uint()
			return false
		}
		return true
	})
	if found {
		return val, true, nil
	}
	b := m.GetUnknown()
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return 0, false, fmt.Errorf("%s: malformed options: %w", field.Desc.FullName(), protowire.ParseError(l))
		}
		b = b[l:]
		if n == num && typ == protowire.VarintType {
			v, l := protowire.ConsumeVarint(b)
			if l < 0 {
				return 0, false, fmt.Errorf("%s: malformed %s: %w", field.Desc.FullName(), optionName, protowire.ParseError(l))
			}
			val, found = v, true
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			return 0, false, fmt.Errorf("%s: malformed options: %w", field.Desc.FullName(), protowire.ParseError(l))
		}
		b = b[l:]
	}
	return val, found, nil
}

// collect finds the framed envelopes of a file and validates their ids.
func collect(f *protogen.File, num protowire.Number) ([]envelope, error) {
	var envs []envelope
	for _, msg := range f.Messages {
		for _, oneof := range msg.Oneofs {
			if oneof.Desc.IsSynthetic() {
				continue
			}
			env := envelope{msg: msg, oneof: oneof}
			var missing []string
			seen := map[uint64]string{}
			for _, field := range oneof.Fields {
				id, ok, err := frameID(field, num)
				if err != nil {
					return nil, err
				}
				if !ok {
					missing = append(missing, string(field.Desc.Name()))
					continue
				}
				if id == 0 || id > 0xff {
					return nil, fmt.Errorf("%s: frame_type %d out of range: ids are 1..255", field.Desc.FullName(), id)
				}
				if prev, dup := seen[id]; dup {
					return nil, fmt.Errorf("%s: duplicate frame_type 0x%02x: already used by %s", field.Desc.FullName(), id, prev)
				}
				seen[id] = string(field.Desc.Name())
				env.cases = append(env.cases, frameCase{field: field, id: id})
			}
			if len(env.cases) == 0 {
				continue
			}
			if len(missing) > 0 {
				return nil, fmt.Errorf("%s: oneof %s: missing frame_type on %s", msg.Desc.FullName(), oneof.Desc.Name(), strings.Join(missing, ", "))
			}
			envs = append(envs, env)
		}
	}
	return envs, nil
}

func constName(env envelope, c frameCase) string {
	return env.msg.GoIdent.GoName + "Frame" + c.field.GoName
}

func emit(plugin *protogen.Plugin, f *protogen.File, envs []envelope) {
	g := plugin.NewGeneratedFile(f.GeneratedFilenamePrefix+"_uds.pb.go", f.GoImportPath)
	header(g, f)
	clip := newClipper(g)
	binary := protogen.GoImportPath("encoding/binary")
	fmtPkg := protogen.GoImportPath("fmt")

	g.P("// FrameType is the one-byte type of a frame on agentwire's framed")
	g.P("// transports: [u32 big-endian length][u8 type][protobuf envelope].")
	g.P("type FrameType uint8")
	g.P()
	g.P("// FrameHeaderSize is the size of a frame's length and type prefix.")
	g.P("const FrameHeaderSize = 5")
	g.P()
	g.P("// FrameInfo describes one frame type, for documentation and tests.")
	g.P("type FrameInfo struct {")
	g.P("\tType FrameType")
	g.P("\t// Envelope is the full name of the message the frame carries.")
	g.P("\tEnvelope string")
	g.P("\t// Field is the name of the oneof case the type stands for.")
	g.P("\tField string")
	g.P("\t// Message is the full name of that case's message type.")
	g.P("\tMessage string")
	g.P("}")
	g.P()
	g.P("// FrameMismatchError reports a frame whose type byte does not name the")
	g.P("// oneof case its payload sets.")
	g.P("type FrameMismatchError struct {")
	g.P("\tEnvelope string")
	g.P("\tType FrameType")
	g.P("\tPayload FrameType")
	g.P("}")
	g.P()
	g.P("func (e *FrameMismatchError) Error() string {")
	g.P("\treturn ", fmtPkg.Ident("Sprintf"), `("%s frame type 0x%02x does not match its payload (0x%02x)", e.Envelope, uint8(e.Type), uint8(e.Payload))`)
	g.P("}")
	g.P()

	for _, env := range envs {
		cases := append([]frameCase(nil), env.cases...)
		sort.Slice(cases, func(i, j int) bool { return cases[i].id < cases[j].id })
		name := env.msg.GoIdent.GoName
		g.P("// Frame types of ", name, " envelopes.")
		g.P("const (")
		for _, c := range cases {
			g.P("\t", constName(env, c), " FrameType = 0x", fmt.Sprintf("%02x", c.id), " // ", c.field.Desc.Name())
		}
		g.P(")")
		g.P()
		g.P("// ", name, "Frames lists the frame types of ", name, " in ascending order.")
		g.P("var ", name, "Frames = []FrameInfo{")
		for _, c := range cases {
			g.P("\t{Type: ", constName(env, c), `, Envelope: "`, env.msg.Desc.FullName(), `", Field: "`, c.field.Desc.Name(), `", Message: "`, c.field.Message.Desc.FullName(), `"},`)
		}
		g.P("}")
		g.P()
		g.P("// Is", name, "Frame reports whether t is a frame type of ", name, ".")
		g.P("func Is", name, "Frame(t FrameType) bool {")
		g.P("\tswitch t {")
		var list []string
		for _, c := range cases {
			list = append(list, constName(env, c))
		}
		g.P("\tcase ", strings.Join(list, ", "), ":")
		g.P("\t\treturn true")
		g.P("\t}")
		g.P("\treturn false")
		g.P("}")
		g.P()
		g.P("// ", name, "FrameName returns the oneof case name of a frame type, or \"\".")
		g.P("func ", name, "FrameName(t FrameType) string {")
		g.P("\tswitch t {")
		for _, c := range cases {
			g.P("\tcase ", constName(env, c), ":")
			g.P("\t\treturn \"", c.field.Desc.Name(), "\"")
		}
		g.P("\t}")
		g.P("\treturn \"\"")
		g.P("}")
		g.P()
		g.P("// FrameType returns the frame type of the case set in x, or 0 if none is.")
		g.P("func (x *", name, ") FrameType() FrameType {")
		g.P("\tswitch x.", env.oneof.GoName, ".(type) {")
		for _, c := range cases {
			g.P("\tcase *", c.field.GoIdent.GoName, ":")
			g.P("\t\treturn ", constName(env, c))
		}
		g.P("\t}")
		g.P("\treturn 0")
		g.P("}")
		g.P()
		g.P("// AppendFrame appends x to dst as one frame. It fails if no case is set")
		g.P("// or the frame would exceed max bytes of type and payload (0 = no limit).")
		g.P("func (x *", name, ") AppendFrame(dst []byte, max int) ([]byte, error) {")
		g.P("\tt := x.FrameType()")
		g.P("\tif t == 0 {")
		g.P("\t\treturn dst, ", fmtPkg.Ident("Errorf"), `("`, env.msg.Desc.FullName(), `: no message set")`)
		g.P("\t}")
		g.P("\tn := x.SizeVT()")
		g.P("\tif max > 0 && n+1 > max {")
		g.P("\t\treturn dst, &FrameSizeError{Size: n + 1, Max: max}")
		g.P("\t}")
		g.P("\tstart := len(dst)")
		g.P("\tdst = append(dst, make([]byte, FrameHeaderSize+n)...)")
		g.P("\t", binary.Ident("BigEndian"), ".PutUint32(dst[start:], uint32(n+1))")
		g.P("\tdst[start+4] = byte(t)")
		g.P("\tif _, err := x.MarshalToSizedBufferVT(dst[start+FrameHeaderSize:]); err != nil {")
		g.P("\t\treturn dst[:start], err")
		g.P("\t}")
		g.P("\treturn dst, nil")
		g.P("}")
		g.P()
		for _, unsafe := range []bool{false, true} {
			fn, call := "UnmarshalFrame", "UnmarshalVT"
			if unsafe {
				fn, call = "UnmarshalFrameUnsafe", "UnmarshalVTUnsafe"
				g.P("// UnmarshalFrameUnsafe is UnmarshalFrame whose strings and bytes alias")
				g.P("// payload: x is valid only while payload is neither changed nor reused.")
			} else {
				g.P("// UnmarshalFrame decodes the payload of a frame of type t into x and")
				g.P("// checks that t names the case the payload sets.")
			}
			g.P("func (x *", name, ") ", fn, "(t FrameType, payload []byte) error {")
			g.P("\tif err := x.", call, "(payload); err != nil {")
			g.P("\t\treturn err")
			g.P("\t}")
			g.P("\tif got := x.FrameType(); got != t {")
			g.P("\t\treturn &FrameMismatchError{Envelope: \"", env.msg.Desc.FullName(), "\", Type: t, Payload: got}")
			g.P("\t}")
			g.P("\treturn nil")
			g.P("}")
			g.P()
		}
		clip.emitMethod(env.msg)
	}
	clip.flush()
	g.P("// FrameSizeError reports a message too large for the frame limit.")
	g.P("type FrameSizeError struct {")
	g.P("\tSize, Max int")
	g.P("}")
	g.P()
	g.P("func (e *FrameSizeError) Error() string {")
	g.P("\treturn ", fmtPkg.Ident("Sprintf"), `("frame of %d bytes exceeds the limit of %d", e.Size, e.Max)`)
	g.P("}")
}
