package main

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// directWriter emits one decoder.
type directWriter struct {
	g    *protogen.GeneratedFile
	plan *directPlan
	d    *decoder
}

// emitDirect writes a file's direct decoders and the helpers they share.
func emitDirect(plugin *protogen.Plugin, f *protogen.File, plan *directPlan) {
	g := plugin.NewGeneratedFile(f.GeneratedFilenamePrefix+"_direct.pb.go", f.GoImportPath)
	header(g, f)
	for _, d := range plan.decoders[f] {
		w := &directWriter{g: g, plan: plan, d: d}
		if d.recycled {
			w.recycled()
		} else {
			w.arena()
		}
	}
	emitDirectHelpers(g)
}

// reached lists the direct messages d reads below its case, the case's
// message first, each once; lists collects the messages of repeated fields.
func (w *directWriter) reached() (msgs, lists []*protogen.Message) {
	seen, listed := map[*protogen.Message]bool{}, map[*protogen.Message]bool{}
	var visit func(m *protogen.Message)
	visit = func(m *protogen.Message) {
		if seen[m] {
			return
		}
		seen[m] = true
		msgs = append(msgs, m)
		for _, fd := range w.plan.fields(w.d, m) {
			if fd.Message == nil {
				continue
			}
			if fd.Desc.IsList() && !listed[fd.Message] {
				listed[fd.Message] = true
				lists = append(lists, fd.Message)
			}
			if w.plan.direct(fd.Message) {
				visit(fd.Message)
			}
		}
	}
	visit(w.d.field.Message)
	return msgs, lists
}

// tag is a field's tag as the decoders switch on it.
func tag(fd *protogen.Field) uint64 {
	wt := protowire.BytesType
	if isVarint(fd) {
		wt = protowire.VarintType
	}
	return uint64(protowire.EncodeTag(fd.Desc.Number(), wt))
}

// scalar is the Go expression of a varint, string or bytes field's value.
func (w *directWriter) scalar(fd *protogen.Field) string {
	switch fd.Desc.Kind() {
	case protoreflect.StringKind:
		return "directString(v)"
	case protoreflect.BytesKind:
		return "v"
	case protoreflect.BoolKind:
		return "v != 0"
	case protoreflect.EnumKind:
		return w.g.QualifiedGoIdent(fd.Enum.GoIdent) + "(v)"
	case protoreflect.Uint64Kind:
		return "v"
	}
	return goScalar(fd) + "(v)"
}

// goScalar is the Go type of a scalar field.
func goScalar(fd *protogen.Field) string {
	switch fd.Desc.Kind() {
	case protoreflect.BoolKind:
		return "bool"
	case protoreflect.StringKind:
		return "string"
	case protoreflect.BytesKind:
		return "[]byte"
	case protoreflect.Int32Kind:
		return "int32"
	case protoreflect.Int64Kind:
		return "int64"
	case protoreflect.Uint32Kind:
		return "uint32"
	}
	return "uint64"
}

// optional reports a proto3 optional scalar, stored behind a pointer.
func optional(fd *protogen.Field) bool {
	return fd.Oneof != nil && fd.Oneof.Desc.IsSynthetic()
}

// inOneof reports a case of a real oneof.
func inOneof(fd *protogen.Field) bool { return fd.Oneof != nil && !fd.Oneof.Desc.IsSynthetic() }

// names lists fields by proto name, for comments.
func names(fields []*protogen.Field) string {
	if len(fields) == 0 {
		return "no field"
	}
	var out []string
	for _, fd := range fields {
		out = append(out, string(fd.Desc.Name()))
	}
	return strings.Join(out, ", ")
}

// others lists fields but one by proto name, for comments.
func others(fields []*protogen.Field, but *protogen.Field) string {
	var rest []*protogen.Field
	for _, fd := range fields {
		if fd != but {
			rest = append(rest, fd)
		}
	}
	if len(rest) == 0 {
		return "nothing"
	}
	return names(rest)
}

// loop writes the field loop of a decode function; each case of fields is
// written by store once its value is in v.
func (w *directWriter) loop(fields []*protogen.Field, store func(fd *protogen.Field)) {
	g := w.g
	g.P("\tfor i := 0; i < len(b); {")
	g.P("\t\ttag, n := directVarint(b[i:])")
	g.P("\t\tif n == 0 {")
	g.P("\t\t\treturn false")
	g.P("\t\t}")
	g.P("\t\ti += n")
	g.P("\t\tswitch tag {")
	for _, fd := range fields {
		g.P("\t\tcase ", fmt.Sprintf("%#x", tag(fd)), ": // ", fd.Desc.Name())
		if isVarint(fd) {
			g.P("\t\t\tv, n := directVarint(b[i:])")
			g.P("\t\t\tif n == 0 {")
			g.P("\t\t\t\treturn false")
			g.P("\t\t\t}")
			g.P("\t\t\ti += n")
		} else {
			g.P("\t\t\tv, next := directValue(b, i)")
			g.P("\t\t\tif next < 0 {")
			g.P("\t\t\t\treturn false")
			g.P("\t\t\t}")
			g.P("\t\t\ti = next")
		}
		store(fd)
	}
	g.P("\t\tdefault:")
	g.P("\t\t\treturn false")
	g.P("\t\t}")
	g.P("\t}")
	g.P("\treturn true")
	g.P("}")
	g.P()
}

// emitDirectHelpers writes the wire helpers the decoders share.
func emitDirectHelpers(g *protogen.GeneratedFile) {
	unsafeString := g.QualifiedGoIdent(protogen.GoIdent{GoName: "String", GoImportPath: "unsafe"})
	g.P(`// directVarint decodes the varint at the start of b: its value and length,
// or n == 0 if b does not start with one.
func directVarint(b []byte) (v uint64, n int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	for shift := uint(0); shift < 64; shift += 7 {
		if n >= len(b) {
			return 0, 0
		}
		c := b[n]
		n++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, n
		}
	}
	return 0, 0
}

// directValue returns the length-prefixed value at b[i:], its capacity
// clipped, and the index after it, or next < 0 if it does not fit in b.
func directValue(b []byte, i int) (v []byte, next int) {
	l, n := directVarint(b[i:])
	if n == 0 || l > uint64(len(b)-i-n) {
		return nil, -1
	}
	start := i + n
	end := start + int(l)
	return b[start:end:end], end
}

// directString returns b as a string without copying, as the generated
// unsafe decoder does: b must never change.
func directString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return `, unsafeString, `(&b[0], len(b))
}`)
}
