package main

import (
	"fmt"
	"go/token"
	"sort"
	"strings"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// eventOptionName is the full name of the extension that marks event cases.
const eventOptionName = "sentinel.agent.v2.event"

// replyName is the message decision handlers answer with, looked up among
// the top-level messages of the event envelope's file.
const replyName = "AgentResponse"

// eventCase is one oneof case marked as an event.
type eventCase struct {
	field  *protogen.Field
	typ    *protogen.EnumValue
	method string
	// cid is the path from the case's message to its correlation id; nil for
	// events of the whole connection.
	cid []*protogen.Field
	ack bool
}

// eventEnvelope is the message whose oneof carries the events of a file.
type eventEnvelope struct {
	msg   *protogen.Message
	oneof *protogen.Oneof
	enum  *protogen.Enum    // the enum every case's type belongs to
	reply *protogen.Message // what non-ack handlers return
	cases []eventCase       // in oneof order
}

// eventOptions reads (sentinel.agent.v2.event) from field options through a
// dynamic type built from the request's own descriptor, so the plugin needs
// neither gen/ linked nor the option's field numbers hard-coded.
type eventOptions struct {
	xt    protoreflect.ExtensionType
	types *protoregistry.Types
}

// findEventOption locates the event extension among the request's files; nil
// when the schema does not declare it.
func findEventOption(plugin *protogen.Plugin) (*eventOptions, error) {
	for _, f := range plugin.Files {
		exts := f.Desc.Extensions()
		for i := range exts.Len() {
			x := exts.Get(i)
			if string(x.FullName()) != eventOptionName || x.ContainingMessage().FullName() != "google.protobuf.FieldOptions" {
				continue
			}
			if x.Message() == nil {
				return nil, fmt.Errorf("%s: want a message option, have %s", eventOptionName, x.Kind())
			}
			xt := dynamicpb.NewExtensionType(x)
			types := new(protoregistry.Types)
			if err := types.RegisterExtension(xt); err != nil {
				return nil, err
			}
			return &eventOptions{xt: xt, types: types}, nil
		}
	}
	return nil, nil
}

// read returns the event option of field as a message, or nil if unset.
func (o *eventOptions) read(field *protogen.Field) (protoreflect.Message, error) {
	opts, _ := field.Desc.Options().(*descriptorpb.FieldOptions)
	if opts == nil {
		return nil, nil
	}
	// The option may be a known extension (gen/ linked), a dynamic one or
	// unknown bytes: a round trip through the wire form reads all three.
	// It is parsed as the request's FieldOptions, which the dynamic
	// extension extends (descriptorpb's is another descriptor).
	xd := o.xt.TypeDescriptor()
	b, err := proto.Marshal(opts)
	if err == nil {
		parsed := dynamicpb.NewMessage(xd.ContainingMessage())
		if err = (proto.UnmarshalOptions{Resolver: o.types}).Unmarshal(b, parsed); err == nil {
			if !parsed.Has(xd) {
				return nil, nil
			}
			return parsed.Get(xd).Message(), nil
		}
	}
	return nil, fmt.Errorf("%s: malformed options: %w", field.Desc.FullName(), err)
}

// collectEvents finds the event cases of a file and validates their options.
func collectEvents(f *protogen.File, o *eventOptions) (*eventEnvelope, error) {
	var env *eventEnvelope
	for _, msg := range allMessages(f.Messages) {
		for _, field := range msg.Fields {
			opt, err := o.read(field)
			if err != nil {
				return nil, err
			}
			if opt == nil {
				continue
			}
			name := field.Desc.FullName()
			oneof := field.Oneof
			if oneof == nil || oneof.Desc.IsSynthetic() || field.Message == nil {
				return nil, fmt.Errorf("%s: %s marks only message cases of a oneof", name, eventOptionName)
			}
			switch {
			case env == nil:
				env = &eventEnvelope{msg: msg, oneof: oneof}
			case env.oneof != oneof:
				return nil, fmt.Errorf("%s: events are already cases of %s: a file has one event envelope", name, env.oneof.Desc.FullName())
			}
			c, err := eventCaseOf(f, field, opt)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			env.cases = append(env.cases, c)
		}
	}
	if env == nil {
		return nil, nil
	}
	return env, env.validate(f)
}

// eventCaseOf reads one case's option.
func eventCaseOf(f *protogen.File, field *protogen.Field, opt protoreflect.Message) (eventCase, error) {
	get := func(name protoreflect.Name) protoreflect.Value {
		fd := opt.Descriptor().Fields().ByName(name)
		if fd == nil {
			return protoreflect.Value{}
		}
		return opt.Get(fd)
	}
	str := func(name protoreflect.Name) string {
		if v := get(name); v.IsValid() {
			return v.String()
		}
		return ""
	}
	c := eventCase{field: field, method: str("method")}
	if v := get("ack"); v.IsValid() {
		c.ack = v.Bool()
	}
	typ := str("type")
	c.typ = findEnumValue(f, typ)
	if c.typ == nil {
		return c, fmt.Errorf("event type %q is not a value of a top-level enum of %s", typ, f.Desc.Path())
	}
	if !token.IsIdentifier(c.method) || !token.IsExported(c.method) {
		return c, fmt.Errorf("event method %q is not an exported Go identifier", c.method)
	}
	if path := str("correlation_id"); path != "" {
		var err error
		if c.cid, err = fieldPath(field.Message, path); err != nil {
			return c, fmt.Errorf("correlation_id %q: %w", path, err)
		}
	}
	return c, nil
}

// fieldPath resolves a dotted path of singular fields ending in a string.
func fieldPath(msg *protogen.Message, path string) ([]*protogen.Field, error) {
	var out []*protogen.Field
	parts := strings.Split(path, ".")
	for i, part := range parts {
		var next *protogen.Field
		for _, fd := range msg.Fields {
			if string(fd.Desc.Name()) == part {
				next = fd
			}
		}
		if next == nil {
			return nil, fmt.Errorf("%s has no field %s", msg.Desc.FullName(), part)
		}
		if next.Desc.Cardinality() == protoreflect.Repeated {
			return nil, fmt.Errorf("%s is repeated", next.Desc.FullName())
		}
		last := i == len(parts)-1
		if last && next.Desc.Kind() != protoreflect.StringKind {
			return nil, fmt.Errorf("%s is a %s, not a string", next.Desc.FullName(), next.Desc.Kind())
		}
		if !last && next.Message == nil {
			return nil, fmt.Errorf("%s is not a message", next.Desc.FullName())
		}
		out = append(out, next)
		msg = next.Message
	}
	return out, nil
}

// validate checks what spans cases (one enum, no type or method used twice)
// and finds the reply message.
func (env *eventEnvelope) validate(f *protogen.File) error {
	types, methods := map[protoreflect.EnumNumber]string{}, map[string]string{}
	for _, c := range env.cases {
		name := c.field.Desc.FullName()
		if env.enum == nil {
			env.enum = c.typ.Parent
		} else if c.typ.Parent != env.enum {
			return fmt.Errorf("%s: event type %s is not a %s: every event's type is a value of one enum", name, c.typ.Desc.Name(), env.enum.Desc.FullName())
		}
		if c.typ.Desc.Number() == 0 {
			return fmt.Errorf("%s: event type %s is the enum's zero value, which stands for no event", name, c.typ.Desc.Name())
		}
		if prev, dup := types[c.typ.Desc.Number()]; dup {
			return fmt.Errorf("%s: duplicate event type %s: already used by %s", name, c.typ.Desc.Name(), prev)
		}
		types[c.typ.Desc.Number()] = string(c.field.Desc.Name())
		if prev, dup := methods[c.method]; dup {
			return fmt.Errorf("%s: duplicate event method %s: already used by %s", name, c.method, prev)
		}
		methods[c.method] = string(c.field.Desc.Name())
	}
	for _, m := range f.Messages {
		if m.Desc.Name() == replyName {
			env.reply = m
		}
	}
	if env.reply == nil {
		return fmt.Errorf("%s: events are answered with %s, which %s does not declare", env.oneof.Desc.FullName(), replyName, f.Desc.Path())
	}
	return nil
}

// byType returns the cases sorted by their event type's number.
func (env *eventEnvelope) byType() []eventCase {
	cases := append([]eventCase(nil), env.cases...)
	sort.Slice(cases, func(i, j int) bool { return cases[i].typ.Desc.Number() < cases[j].typ.Desc.Number() })
	return cases
}

// findEnumValue returns the value called name of a top-level enum of the
// file (their value names are unique in a proto package), or nil.
func findEnumValue(f *protogen.File, name string) *protogen.EnumValue {
	for _, e := range f.Enums {
		for _, v := range e.Values {
			if string(v.Desc.Name()) == name {
				return v
			}
		}
	}
	return nil
}

// allMessages returns msgs and the messages nested in them, depth first.
func allMessages(msgs []*protogen.Message) []*protogen.Message {
	var out []*protogen.Message
	for _, m := range msgs {
		out = append(out, m)
		out = append(out, allMessages(m.Messages)...)
	}
	return out
}
