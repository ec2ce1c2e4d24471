package main

import (
	"fmt"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// A recycled decoder decodes into the structs a message already holds, as
// UnmarshalVTUnsafe does, merging: messages kept for the next event of
// their kind then decode without allocating. List elements past a slice's
// length are reused as new elements.

// decodeFunc names the function that decodes message m.
func (w *directWriter) decodeFunc(m *protogen.Message) string {
	return w.d.prefix + "Decode" + m.GoIdent.GoName
}

// recycledFails is the condition under which decoding v into *p fails.
func (w *directWriter) recycledFails(m *protogen.Message, p string) string {
	if w.plan.direct(m) {
		return "!" + w.decodeFunc(m) + "(" + p + ", v)"
	}
	return p + ".UnmarshalVTUnsafe(v) != nil"
}

func (w *directWriter) recycled() {
	g, d := w.g, w.d
	msgs, lists := w.reached()
	env := g.QualifiedGoIdent(d.env.GoIdent)
	fields := w.plan.fields(d, d.env)

	fn := "Unmarshal" + d.field.GoName + "DirectUnsafe"
	g.P("// ", fn, " decodes b, an encoded ", d.env.GoIdent.GoName, ", into x as")
	g.P("// UnmarshalVTUnsafe does (merging; strings and bytes alias b) if b holds")
	g.P("// ", d.field.Desc.Name(), " and ", others(fields, d.field), " only, and below them only what the")
	g.P("// direct decoder reads; it reports whether it did. If not, x holds a")
	g.P("// partial decode, to clear before decoding with UnmarshalVTUnsafe. It fills")
	g.P("// the structs x holds: list elements past a slice's length are reused,")
	g.P("// their fields overwritten, and must hold no unknown fields.")
	g.P("func (x *", env, ") ", fn, "(b []byte) bool {")
	g.P("\treturn ", w.decodeFunc(d.env), "(x, b)")
	g.P("}")
	g.P()
	w.recycledDecode(d.env)
	for _, m := range msgs {
		w.recycledDecode(m)
	}
	for _, m := range lists {
		if w.plan.direct(m) {
			w.recycledFresh(m)
		}
	}
}

// recycledDecode writes the decode function of a message.
func (w *directWriter) recycledDecode(m *protogen.Message) {
	g := w.g
	fields := w.plan.fields(w.d, m)
	name := m.GoIdent.GoName
	g.P("// ", w.decodeFunc(m), " decodes one ", name, " into m. It reads")
	g.P("// ", names(fields), ".")
	g.P("func ", w.decodeFunc(m), "(m *", m.GoIdent, ", b []byte) bool {")
	w.loop(fields, func(fd *protogen.Field) {
		if inOneof(fd) {
			g.P("\t\t\to, ok := m.", fd.Oneof.GoName, ".(*", fd.GoIdent, ")")
			g.P("\t\t\tif !ok {")
			g.P("\t\t\t\tif m.", fd.Oneof.GoName, " != nil {")
			g.P("\t\t\t\t\treturn false // another case: the generated decoder replaces it")
			g.P("\t\t\t\t}")
			g.P("\t\t\t\to = new(", fd.GoIdent, ")")
			g.P("\t\t\t\tm.", fd.Oneof.GoName, " = o")
			g.P("\t\t\t}")
			if fd.Message == nil {
				g.P("\t\t\to.", fd.GoName, " = ", w.scalar(fd))
				return
			}
			g.P("\t\t\tif o.", fd.GoName, " == nil {")
			g.P("\t\t\t\to.", fd.GoName, " = new(", fd.Message.GoIdent, ")")
			g.P("\t\t\t}")
			g.P("\t\t\tif ", w.recycledFails(fd.Message, "o."+fd.GoName), " {")
			g.P("\t\t\t\treturn false")
			g.P("\t\t\t}")
			return
		}
		switch {
		case fd.Desc.IsList():
			g.P("\t\t\ts := m.", fd.GoName)
			g.P("\t\t\tvar e *", fd.Message.GoIdent)
			g.P("\t\t\tif n := len(s); n < cap(s) {")
			g.P("\t\t\t\ts = s[:n+1]")
			g.P("\t\t\t\tif e = s[n]; e == nil {")
			g.P("\t\t\t\t\te = new(", fd.Message.GoIdent, ")")
			g.P("\t\t\t\t\ts[n] = e")
			g.P("\t\t\t\t}")
			g.P("\t\t\t} else {")
			g.P("\t\t\t\te = new(", fd.Message.GoIdent, ")")
			g.P("\t\t\t\ts = append(s, e)")
			g.P("\t\t\t}")
			g.P("\t\t\tm.", fd.GoName, " = s")
			if w.plan.direct(fd.Message) {
				g.P("\t\t\tif !", w.decodeFunc(fd.Message), "Fresh(e, v) {")
			} else {
				g.P("\t\t\t*e = ", fd.Message.GoIdent, "{}")
				g.P("\t\t\tif e.UnmarshalVTUnsafe(v) != nil {")
			}
			g.P("\t\t\t\treturn false")
			g.P("\t\t\t}")
		case fd.Message != nil:
			g.P("\t\t\tif m.", fd.GoName, " == nil {")
			g.P("\t\t\t\tm.", fd.GoName, " = new(", fd.Message.GoIdent, ")")
			g.P("\t\t\t}")
			g.P("\t\t\tif ", w.recycledFails(fd.Message, "m."+fd.GoName), " {")
			g.P("\t\t\t\treturn false")
			g.P("\t\t\t}")
		case optional(fd):
			g.P("\t\t\tif m.", fd.GoName, " == nil {")
			g.P("\t\t\t\tm.", fd.GoName, " = new(", w.scalarType(fd), ")")
			g.P("\t\t\t}")
			g.P("\t\t\t*m.", fd.GoName, " = ", w.scalar(fd))
		default:
			g.P("\t\t\tm.", fd.GoName, " = ", w.scalar(fd))
		}
	})
}

// flat reports whether every field of m is a plain string or bytes field the
// decoder reads, with a one-byte tag: its common encoding then decodes
// without a loop.
func (w *directWriter) flat(m *protogen.Message) bool {
	fields := w.plan.fields(w.d, m)
	if len(fields) == 0 || len(fields) != len(m.Fields) {
		return false
	}
	for _, fd := range fields {
		k := fd.Desc.Kind()
		if fd.Oneof != nil || fd.Desc.IsList() || (k != protoreflect.StringKind && k != protoreflect.BytesKind) || fd.Desc.Number() >= 16 {
			return false
		}
	}
	return true
}

// recycledFresh writes the function that decodes a list element into a
// struct that may hold an earlier element.
func (w *directWriter) recycledFresh(m *protogen.Message) {
	g := w.g
	name := w.decodeFunc(m) + "Fresh"
	g.P("// ", name, " decodes b into m as into a new ", m.GoIdent.GoName, ":")
	g.P("// m may hold an earlier element, whose fields it overwrites.")
	g.P("func ", name, "(m *", m.GoIdent, ", b []byte) bool {")
	if !w.flat(m) {
		g.P("\t*m = ", m.GoIdent, "{}")
		g.P("\treturn ", w.decodeFunc(m), "(m, b)")
		g.P("}")
		g.P()
		return
	}
	fields := w.plan.fields(w.d, m)
	// Every field once, in order, each shorter than 128 bytes: what
	// proxies send, read without a loop.
	g.P("\t// Every field once, in order, each shorter than 128 bytes.")
	g.P("\tif len(b) >= 2 && b[0] == ", fmt.Sprintf("%#x", tag(fields[0])), " && b[1] < 0x80 {")
	// at(j, k) is the index k bytes after field j's tag (field 0's is at 0).
	at := func(j, k int) string {
		if j == 0 {
			return fmt.Sprint(k)
		}
		return fmt.Sprintf("p%d+%d", j, k)
	}
	for i := 1; i <= len(fields); i++ {
		indent := tabs(i + 1)
		next := "2 + int(b[1])"
		if i > 1 {
			next = fmt.Sprintf("p%d + 2 + int(b[p%d+1])", i-1, i-1)
		}
		g.P(indent, "p", i, " := ", next)
		if i < len(fields) {
			g.P(indent, "if p", i, "+2 <= len(b) && b[p", i, "] == ", fmt.Sprintf("%#x", tag(fields[i])), " && b[p", i, "+1] < 0x80 {")
			continue
		}
		g.P(indent, "if p", i, " == len(b) {")
		for j, fd := range fields {
			v := fmt.Sprintf("b[%s:p%d]", at(j, 2), j+1)
			if fd.Desc.Kind() == protoreflect.BytesKind {
				v = fmt.Sprintf("b[%s:p%d:p%d]", at(j, 2), j+1, j+1)
			} else {
				v = "directString(" + v + ")"
			}
			g.P(indent, "\tm.", fd.GoName, " = ", v)
		}
		g.P(indent, "\treturn true")
		g.P(indent, "}")
	}
	for i := len(fields); i >= 1; i-- {
		g.P(tabs(i), "}")
	}
	for _, fd := range fields {
		zero := `""`
		if fd.Desc.Kind() == protoreflect.BytesKind {
			zero = "nil"
		}
		g.P("\tm.", fd.GoName, " = ", zero)
	}
	g.P("\treturn ", w.decodeFunc(m), "(m, b)")
	g.P("}")
	g.P()
}

func tabs(n int) string {
	s := ""
	for range n {
		s += "\t"
	}
	return s
}
