package main

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Direct decoders read the hot shapes of one envelope case straight into
// their final memory, without the per-message allocations of the generated
// decoder, and decline (return false) on anything else: fields they do not
// cover, wire types that do not match, malformed input. The caller then
// decodes with UnmarshalVT*, so either way the result is the generated
// decoder's. Which shapes are hot is the SDK's choice, not the schema's: it
// is given as plugin options in buf.gen.yaml, like vtprotobuf's pool=.
//
//	direct=<message>[:<field>+<field>...]   fields direct decoders read
//	                                         (all of the message's if none)
//	decoder=<envelope>.<case>:arena=<bytes>  a decoder into one fresh arena
//	decoder=<envelope>.<case>:recycled       a decoder into recycled structs
//
// Field numbers, wire types and Go names come from the descriptors. A
// message field whose message is not named by direct= is decoded by its
// UnmarshalVTUnsafe.

// directParams are the plugin's direct= and decoder= options.
type directParams struct {
	fields   map[protoreflect.FullName][]protoreflect.Name // nil slice: every field
	decoders []decoderParam
}

type decoderParam struct {
	field    protoreflect.FullName // the envelope case
	recycled bool
	arena    int // bytes of input an arena holds inline
}

// parseDirectParams reads the direct options from the plugin parameter.
func parseDirectParams(param string) (*directParams, error) {
	p := &directParams{fields: map[protoreflect.FullName][]protoreflect.Name{}}
	for _, kv := range strings.Split(param, ",") {
		key, value, _ := strings.Cut(kv, "=")
		switch key {
		case "direct":
			msg, list, _ := strings.Cut(value, ":")
			var names []protoreflect.Name
			if list != "" {
				for _, n := range strings.Split(list, "+") {
					names = append(names, protoreflect.Name(n))
				}
			}
			p.fields[protoreflect.FullName(msg)] = names
		case "decoder":
			field, mode, _ := strings.Cut(value, ":")
			d := decoderParam{field: protoreflect.FullName(field)}
			switch {
			case mode == "recycled":
				d.recycled = true
			case strings.HasPrefix(mode, "arena="):
				n, err := strconv.Atoi(strings.TrimPrefix(mode, "arena="))
				if err != nil || n < 0 {
					return nil, fmt.Errorf("decoder=%s: arena takes a number of bytes", value)
				}
				d.arena = n
			default:
				return nil, fmt.Errorf("decoder=%s: want %s:arena=<bytes> or %s:recycled", value, field, field)
			}
			p.decoders = append(p.decoders, d)
		}
	}
	return p, nil
}

// directPlan is what the options resolve to in the request's files.
type directPlan struct {
	covered  map[*protogen.Message]map[*protogen.Field]bool // direct messages
	decoders map[*protogen.File][]*decoder
}

// decoder is one decoder to emit.
type decoder struct {
	env      *protogen.Message
	field    *protogen.Field // the case it decodes
	recycled bool
	arena    int
	prefix   string // of its unexported helpers' names
}

// resolve finds the options' messages and fields and checks that each
// decoder can read what it covers.
func (p *directParams) resolve(plugin *protogen.Plugin) (*directPlan, error) {
	plan := &directPlan{covered: map[*protogen.Message]map[*protogen.Field]bool{}, decoders: map[*protogen.File][]*decoder{}}
	byName := map[protoreflect.FullName]*protogen.Message{}
	fileOf := map[*protogen.Message]*protogen.File{}
	for _, f := range plugin.Files {
		for _, m := range allMessages(f.Messages) {
			byName[m.Desc.FullName()] = m
			fileOf[m] = f
		}
	}
	for name, fields := range p.fields {
		m := byName[name]
		if m == nil {
			return nil, fmt.Errorf("direct=%s: no such message", name)
		}
		set := map[*protogen.Field]bool{}
		for _, fd := range m.Fields {
			set[fd] = fields == nil
		}
		for _, n := range fields {
			fd := fieldByName(m, n)
			if fd == nil {
				return nil, fmt.Errorf("direct=%s: %s has no field %s", name, name, n)
			}
			set[fd] = true
		}
		plan.covered[m] = set
	}
	for _, dp := range p.decoders {
		env := byName[dp.field.Parent()]
		var field *protogen.Field
		if env != nil {
			field = fieldByName(env, dp.field.Name())
		}
		if field == nil || field.Oneof == nil || field.Oneof.Desc.IsSynthetic() || field.Message == nil {
			return nil, fmt.Errorf("decoder=%s: not a message case of a oneof", dp.field)
		}
		if plan.covered[field.Message] == nil {
			return nil, fmt.Errorf("decoder=%s: %s is not named by a direct option", dp.field, field.Message.Desc.FullName())
		}
		d := &decoder{env: env, field: field, recycled: dp.recycled, arena: dp.arena,
			prefix: lowerFirst(env.GoIdent.GoName) + field.GoName}
		if err := plan.check(d); err != nil {
			return nil, fmt.Errorf("decoder=%s: %w", dp.field, err)
		}
		f := fileOf[env]
		plan.decoders[f] = append(plan.decoders[f], d)
	}
	return plan, nil
}

// fields returns the fields of m a decoder reads: the covered ones, and for
// the envelope its case.
func (plan *directPlan) fields(d *decoder, m *protogen.Message) []*protogen.Field {
	var out []*protogen.Field
	for _, fd := range m.Fields {
		if plan.covered[m][fd] || fd == d.field {
			out = append(out, fd)
		}
	}
	return out
}

// direct reports whether a message is decoded directly.
func (plan *directPlan) direct(m *protogen.Message) bool { return plan.covered[m] != nil }

// check walks what d reads and refuses what direct decoders cannot.
func (plan *directPlan) check(d *decoder) error {
	for _, fd := range plan.fields(d, d.env) {
		if fd == d.field || d.recycled {
			continue
		}
		// The arena's envelope scan reads only varints besides the case.
		if fd.Oneof != nil || fd.Desc.HasPresence() || !isVarint(fd) {
			return fmt.Errorf("%s: an arena decoder's envelope takes only plain varint fields besides its case", fd.Desc.FullName())
		}
	}
	// Depth first over singular fields, which nest in one block: a message
	// on its own path would be infinite. Elements of lists get blocks of
	// their own, so they start walks of their own.
	const (
		onPath = 1
		done   = 2
	)
	state := map[*protogen.Message]int{}
	queue := []*protogen.Message{d.field.Message}
	var walk func(m *protogen.Message) error
	walk = func(m *protogen.Message) error {
		switch state[m] {
		case onPath:
			return fmt.Errorf("%s contains itself", m.Desc.FullName())
		case done:
			return nil
		}
		state[m] = onPath
		for _, fd := range plan.fields(d, m) {
			name := fd.Desc.FullName()
			switch {
			case fd.Desc.IsMap():
				return fmt.Errorf("%s: direct decoders do not take maps", name)
			case fd.Desc.IsList() && fd.Message == nil:
				return fmt.Errorf("%s: direct decoders take repeated messages only", name)
			case fd.Message == nil && !isVarint(fd) && fd.Desc.Kind() != protoreflect.StringKind && fd.Desc.Kind() != protoreflect.BytesKind:
				return fmt.Errorf("%s: direct decoders do not take %s fields", name, fd.Desc.Kind())
			case fd.Message == nil || !plan.direct(fd.Message):
			case fd.Desc.IsList():
				queue = append(queue, fd.Message)
			default:
				if err := walk(fd.Message); err != nil {
					return err
				}
			}
		}
		state[m] = done
		return nil
	}
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		if err := walk(m); err != nil {
			return err
		}
	}
	return nil
}

// isVarint reports whether a field is a scalar the decoders read from a
// varint: bool, enum and the non-zigzag integers.
func isVarint(fd *protogen.Field) bool {
	switch fd.Desc.Kind() {
	case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Int64Kind,
		protoreflect.Uint32Kind, protoreflect.Uint64Kind:
		return true
	}
	return false
}

func fieldByName(m *protogen.Message, name protoreflect.Name) *protogen.Field {
	for _, fd := range m.Fields {
		if fd.Desc.Name() == name {
			return fd
		}
	}
	return nil
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}
