package main

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/compiler/protogen"
)

// An arena decoder decodes into memory its caller then owns for good: one
// arena holds the envelope's case, every message below it with room for
// the first element of each list, and a copy of the input the strings
// alias. Blocks are per message: the message and what its fields need.

func (w *directWriter) arenaType() string { return w.d.prefix + "Arena" }

// block is the Go type that holds a message in the arena: its block if it
// is decoded directly, else the message itself (UnmarshalVTUnsafe fills it).
func (w *directWriter) block(m *protogen.Message) string {
	if w.plan.direct(m) {
		return w.d.prefix + m.GoIdent.GoName + "Block"
	}
	return w.g.QualifiedGoIdent(m.GoIdent)
}

// ptr is the message held by the block expression x.
func (w *directWriter) ptr(m *protogen.Message, x string) string {
	if w.plan.direct(m) {
		return "&" + x + ".m"
	}
	return "&" + x
}

// decodeFails is the condition under which decoding v into the block at
// pointer p (an address "&x" or a pointer variable) fails.
func (w *directWriter) decodeFails(m *protogen.Message, p string) string {
	if w.plan.direct(m) {
		return "!a.decode" + m.GoIdent.GoName + "(" + p + ", v)"
	}
	return strings.TrimPrefix(p, "&") + ".UnmarshalVTUnsafe(v) != nil"
}

// sharedCase names the block field a oneof's cases of message type m share:
// only one case is set at a time.
func sharedCase(fd *protogen.Field) string {
	return "o" + fd.Oneof.GoName + fd.Message.GoIdent.GoName
}

func (w *directWriter) arena() {
	g, d := w.g, w.d
	msgs, lists := w.reached()
	env, arena := g.QualifiedGoIdent(d.env.GoIdent), w.arenaType()
	fields := w.plan.fields(d, d.env)

	fn := "Unmarshal" + d.field.GoName + "Direct"
	g.P("// ", fn, " decodes src, an encoded ", d.env.GoIdent.GoName, ", into x if src sets")
	g.P("// ", d.field.Desc.Name(), " once, besides it only ", others(fields, d.field), ", and below it only what")
	g.P("// the direct decoder reads; it reports whether it did. x is untouched when")
	g.P("// it did not: decode with UnmarshalVT then. The message, what it points to")
	g.P("// and a copy of src its strings alias take one allocation (for src up to")
	g.P("// ", d.arena, " bytes), and each list element after the first of its type one more.")
	g.P("// src may be reused afterwards.")
	g.P("func (x *", env, ") ", fn, "(src []byte) bool {")
	for _, fd := range fields {
		if fd != d.field {
			g.P("\tvar ", lowerFirst(fd.GoName), " ", w.scalarType(fd))
		}
	}
	g.P("\tstart, end := -1, 0")
	g.P("\tfor i := 0; i < len(src); {")
	g.P("\t\ttag, n := directVarint(src[i:])")
	g.P("\t\tif n == 0 {")
	g.P("\t\t\treturn false")
	g.P("\t\t}")
	g.P("\t\ti += n")
	g.P("\t\tswitch tag {")
	for _, fd := range fields {
		g.P("\t\tcase ", fmt.Sprintf("%#x", tag(fd)), ": // ", fd.Desc.Name())
		if fd == d.field {
			g.P("\t\t\tif start >= 0 {")
			g.P("\t\t\t\treturn false // merged by the generated decoder")
			g.P("\t\t\t}")
			g.P("\t\t\tv, next := directValue(src, i)")
			g.P("\t\t\tif next < 0 {")
			g.P("\t\t\t\treturn false")
			g.P("\t\t\t}")
			g.P("\t\t\tstart, end, i = next-len(v), next, next")
			continue
		}
		g.P("\t\t\tv, n := directVarint(src[i:])")
		g.P("\t\t\tif n == 0 {")
		g.P("\t\t\t\treturn false")
		g.P("\t\t\t}")
		g.P("\t\t\ti += n")
		g.P("\t\t\t", lowerFirst(fd.GoName), " = ", w.scalar(fd))
	}
	g.P("\t\tdefault:")
	g.P("\t\t\treturn false")
	g.P("\t\t}")
	g.P("\t}")
	g.P("\tif start < 0 {")
	g.P("\t\treturn false")
	g.P("\t}")
	g.P("\ta := new(", arena, ")")
	if d.arena > 0 {
		g.P("\tvar own []byte")
		g.P("\tif len(src) <= len(a.buf) {")
		g.P("\t\town = a.buf[:len(src)]")
		g.P("\t} else {")
		g.P("\t\town = make([]byte, len(src))")
		g.P("\t}")
	} else {
		g.P("\town := make([]byte, len(src))")
	}
	g.P("\tcopy(own, src)")
	g.P("\tif !a.decode", d.field.Message.GoIdent.GoName, "(&a.root, own[start:end]) {")
	g.P("\t\treturn false")
	g.P("\t}")
	g.P("\ta.wrap.", d.field.GoName, " = &a.root.m")
	lit := ""
	for _, fd := range fields {
		if fd != d.field {
			lit += fd.GoName + ": " + lowerFirst(fd.GoName) + ", "
		}
	}
	g.P("\t*x = ", env, "{", lit, d.field.Oneof.GoName, ": &a.wrap}")
	g.P("\treturn true")
	g.P("}")
	g.P()

	g.P("// ", arena, " is the memory of one ", fn, ".")
	g.P("type ", arena, " struct {")
	g.P("\twrap ", d.field.GoIdent)
	g.P("\troot ", w.block(d.field.Message))
	for _, m := range lists {
		g.P("\t// s", m.GoIdent.GoName, " is the first ", m.GoIdent.GoName, " of any list, once used.")
		g.P("\ts", m.GoIdent.GoName, "     ", w.block(m))
		g.P("\ts", m.GoIdent.GoName, "Used bool")
	}
	if d.arena > 0 {
		g.P("\t// buf holds the input the strings alias, when it fits. It comes")
		g.P("\t// last: the collector scans an object only up to its last pointer.")
		g.P("\tbuf [", d.arena, "]byte")
	}
	g.P("}")
	g.P()
	for _, m := range lists {
		name := m.GoIdent.GoName
		g.P("// take", name, " returns the arena's ", name, " the first time, then new ones.")
		g.P("func (a *", arena, ") take", name, "() *", w.block(m), " {")
		g.P("\tif a.s", name, "Used {")
		g.P("\t\treturn new(", w.block(m), ")")
		g.P("\t}")
		g.P("\ta.s", name, "Used = true")
		g.P("\treturn &a.s", name)
		g.P("}")
		g.P()
	}
	for _, m := range msgs {
		w.arenaBlock(m)
		w.arenaDecode(m)
	}
}

// scalarType is the Go type of a varint field.
func (w *directWriter) scalarType(fd *protogen.Field) string {
	if fd.Enum != nil {
		return w.g.QualifiedGoIdent(fd.Enum.GoIdent)
	}
	return goScalar(fd)
}

// arenaBlock writes the block type of a direct message.
func (w *directWriter) arenaBlock(m *protogen.Message) {
	g := w.g
	g.P("// ", w.block(m), " holds one ", m.GoIdent.GoName, " and what its fields")
	g.P("// point to.")
	g.P("type ", w.block(m), " struct {")
	g.P("\tm ", m.GoIdent)
	shared := map[string]bool{}
	for _, fd := range w.plan.fields(w.d, m) {
		switch {
		case inOneof(fd):
			g.P("\tw", fd.GoName, " ", fd.GoIdent)
			if fd.Message != nil && !shared[sharedCase(fd)] {
				shared[sharedCase(fd)] = true
				g.P("\t", sharedCase(fd), " ", w.block(fd.Message))
			}
		case fd.Desc.IsList():
			g.P("\tr", fd.GoName, " [1]*", fd.Message.GoIdent)
		case fd.Message != nil:
			g.P("\tf", fd.GoName, " ", w.block(fd.Message))
		case optional(fd):
			g.P("\tp", fd.GoName, " ", w.scalarType(fd))
		}
	}
	g.P("}")
	g.P()
}

// arenaDecode writes the decode method of a direct message.
func (w *directWriter) arenaDecode(m *protogen.Message) {
	g := w.g
	fields := w.plan.fields(w.d, m)
	name := m.GoIdent.GoName
	g.P("// decode", name, " decodes one ", name, " into blk. It reads")
	g.P("// ", names(fields), ".")
	g.P("func (a *", w.arenaType(), ") decode", name, "(blk *", w.block(m), ", b []byte) bool {")
	if len(fields) > 0 {
		g.P("\tm := &blk.m")
	}
	w.loop(fields, func(fd *protogen.Field) {
		if inOneof(fd) {
			wrap := "&blk.w" + fd.GoName
			g.P("\t\t\tif m.", fd.Oneof.GoName, " != nil && m.", fd.Oneof.GoName, " != ", wrap, " {")
			g.P("\t\t\t\treturn false // another case: the generated decoder replaces it")
			g.P("\t\t\t}")
			if fd.Message == nil {
				g.P("\t\t\tblk.w", fd.GoName, ".", fd.GoName, " = ", w.scalar(fd))
				g.P("\t\t\tm.", fd.Oneof.GoName, " = ", wrap)
				return
			}
			target := "blk." + sharedCase(fd)
			g.P("\t\t\tblk.w", fd.GoName, ".", fd.GoName, " = ", w.ptr(fd.Message, target))
			g.P("\t\t\tm.", fd.Oneof.GoName, " = ", wrap)
			g.P("\t\t\tif ", w.decodeFails(fd.Message, "&"+target), " {")
			g.P("\t\t\t\treturn false")
			g.P("\t\t\t}")
			return
		}
		switch {
		case fd.Desc.IsList():
			g.P("\t\t\te := a.take", fd.Message.GoIdent.GoName, "()")
			g.P("\t\t\tif ", w.decodeFails(fd.Message, "e"), " {")
			g.P("\t\t\t\treturn false")
			g.P("\t\t\t}")
			g.P("\t\t\tif m.", fd.GoName, " == nil {")
			g.P("\t\t\t\tm.", fd.GoName, " = blk.r", fd.GoName, "[:0]")
			g.P("\t\t\t}")
			elem := "e"
			if w.plan.direct(fd.Message) {
				elem = "&e.m"
			}
			g.P("\t\t\tm.", fd.GoName, " = append(m.", fd.GoName, ", ", elem, ")")
		case fd.Message != nil:
			target := "blk.f" + fd.GoName
			g.P("\t\t\tm.", fd.GoName, " = ", w.ptr(fd.Message, target))
			g.P("\t\t\tif ", w.decodeFails(fd.Message, "&"+target), " {")
			g.P("\t\t\t\treturn false")
			g.P("\t\t\t}")
		case optional(fd):
			g.P("\t\t\tblk.p", fd.GoName, " = ", w.scalar(fd))
			g.P("\t\t\tm.", fd.GoName, " = &blk.p", fd.GoName)
		default:
			g.P("\t\t\tm.", fd.GoName, " = ", w.scalar(fd))
		}
	})
}
