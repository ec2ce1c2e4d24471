package main

import (
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// clipper emits ClipBytes for envelopes: after an unsafe decode every bytes
// field aliases one shared buffer, and capping each one's capacity at its
// length keeps an append to one from overwriting what follows it. The
// helpers reach bytes at any depth, so a case added to the schema is clipped
// without anyone remembering to.
type clipper struct {
	g       *protogen.GeneratedFile
	memo    map[protoreflect.FullName]bool // whether a message holds bytes
	emitted map[protoreflect.FullName]bool
	queue   []*protogen.Message // helpers still to emit
}

func newClipper(g *protogen.GeneratedFile) *clipper {
	return &clipper{g: g, memo: map[protoreflect.FullName]bool{}, emitted: map[protoreflect.FullName]bool{}}
}

// emitMethod writes (x *msg).ClipBytes and queues the helpers it needs.
func (c *clipper) emitMethod(msg *protogen.Message) {
	name := msg.GoIdent.GoName
	c.g.P("// ClipBytes caps the capacity of every bytes field in x at its length.")
	c.g.P("// Call it after UnmarshalFrameUnsafe or UnmarshalVTUnsafe: the fields then")
	c.g.P("// share the payload, and an append to one would overwrite its neighbours.")
	if !c.holdsBytes(msg) {
		c.g.P("func (x *", name, ") ClipBytes() {}")
		c.g.P()
		return
	}
	c.g.P("func (x *", name, ") ClipBytes() { ", c.helper(msg), "(x) }")
	c.g.P()
}

// flush writes the queued helpers, and the helpers those need.
func (c *clipper) flush() {
	for len(c.queue) > 0 {
		m := c.queue[0]
		c.queue = c.queue[1:]
		c.emitHelper(m)
	}
}

// helper names msg's helper and queues it once.
func (c *clipper) helper(msg *protogen.Message) string {
	if !c.emitted[msg.Desc.FullName()] {
		c.emitted[msg.Desc.FullName()] = true
		c.queue = append(c.queue, msg)
	}
	return "clipBytes" + msg.GoIdent.GoName
}

// holdsBytes reports whether msg has a bytes field at any depth.
func (c *clipper) holdsBytes(msg *protogen.Message) bool {
	name := msg.Desc.FullName()
	v, ok := c.memo[name]
	if !ok {
		v = reachesBytes(msg, map[protoreflect.FullName]bool{})
		c.memo[name] = v
	}
	return v
}

// reachesBytes searches the messages reachable from msg for a bytes field.
func reachesBytes(msg *protogen.Message, seen map[protoreflect.FullName]bool) bool {
	if seen[msg.Desc.FullName()] {
		return false
	}
	seen[msg.Desc.FullName()] = true
	for _, f := range msg.Fields {
		f = element(f)
		if f.Desc.Kind() == protoreflect.BytesKind || (f.Message != nil && reachesBytes(f.Message, seen)) {
			return true
		}
	}
	return false
}

// element is a map field's value field, or f itself.
func element(f *protogen.Field) *protogen.Field {
	if f.Desc.IsMap() {
		return f.Message.Fields[1]
	}
	return f
}

// fieldHolds reports whether f is bytes or leads to some.
func (c *clipper) fieldHolds(f *protogen.Field) bool {
	f = element(f)
	return f.Desc.Kind() == protoreflect.BytesKind || (f.Message != nil && c.holdsBytes(f.Message))
}

// clip returns the statement that clips expr, of field f's element type.
func (c *clipper) clip(f *protogen.Field, expr string) string {
	if f.Desc.Kind() == protoreflect.BytesKind {
		return expr + " = " + c.g.QualifiedGoIdent(protogen.GoIdent{GoName: "Clip", GoImportPath: "slices"}) + "(" + expr + ")"
	}
	return c.helper(f.Message) + "(" + expr + ")"
}

func (c *clipper) emitHelper(msg *protogen.Message) {
	g := c.g
	g.P("func ", c.helper(msg), "(m *", msg.GoIdent, ") {")
	g.P("\tif m == nil {")
	g.P("\t\treturn")
	g.P("\t}")
	for _, f := range msg.Fields {
		if (f.Oneof != nil && !f.Oneof.Desc.IsSynthetic()) || !c.fieldHolds(f) {
			continue
		}
		switch {
		case f.Desc.IsMap():
			v := f.Message.Fields[1]
			if v.Desc.Kind() == protoreflect.BytesKind {
				g.P("\tfor k, v := range m.", f.GoName, " {")
				g.P("\t\tm.", f.GoName, "[k] = ", g.QualifiedGoIdent(protogen.GoIdent{GoName: "Clip", GoImportPath: "slices"}), "(v)")
			} else {
				g.P("\tfor _, v := range m.", f.GoName, " {")
				g.P("\t\t", c.clip(v, "v"))
			}
			g.P("\t}")
		case f.Desc.IsList():
			g.P("\tfor i := range m.", f.GoName, " {")
			g.P("\t\t", c.clip(f, "m."+f.GoName+"[i]"))
			g.P("\t}")
		default:
			g.P("\t", c.clip(f, "m."+f.GoName))
		}
	}
	for _, o := range msg.Oneofs {
		if o.Desc.IsSynthetic() {
			continue
		}
		var cases []*protogen.Field
		for _, f := range o.Fields {
			if c.fieldHolds(f) {
				cases = append(cases, f)
			}
		}
		if len(cases) == 0 {
			continue
		}
		g.P("\tswitch o := m.", o.GoName, ".(type) {")
		for _, f := range cases {
			g.P("\tcase *", f.GoIdent, ":")
			g.P("\t\t", c.clip(f, "o."+f.GoName))
		}
		g.P("\t}")
	}
	g.P("}")
	g.P()
}
