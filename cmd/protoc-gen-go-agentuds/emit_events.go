package main

import (
	"google.golang.org/protobuf/compiler/protogen"
)

// emitEvents writes the file's event code: the event table, the envelope's
// EventType and EventCorrelationID accessors, the EventHandler interface, its
// UnimplementedEventHandler base and DispatchEvent, and EventVisitor.
func emitEvents(plugin *protogen.Plugin, f *protogen.File, env *eventEnvelope) {
	g := plugin.NewGeneratedFile(f.GeneratedFilenamePrefix+"_events.pb.go", f.GoImportPath)
	header(g, f)
	ctx := protogen.GoImportPath("context").Ident("Context")
	name := env.msg.GoIdent.GoName
	enum := g.QualifiedGoIdent(env.enum.GoIdent)
	reply := g.QualifiedGoIdent(env.reply.GoIdent)
	zeroDoc, zero := zeroValue(g, env)

	g.P("// EventInfo describes one event case of ", name, ", for documentation,")
	g.P("// tests and telemetry.")
	g.P("type EventInfo struct {")
	g.P("\tType ", enum)
	g.P("\t// Field is the name of the oneof case.")
	g.P("\tField string")
	g.P("\t// Message is the full name of the case's message type.")
	g.P("\tMessage string")
	g.P("\t// Method is the EventHandler method that handles the event.")
	g.P("\tMethod string")
	g.P("\t// Ack is set when Method returns only an error: success is answered")
	g.P("\t// with allow.")
	g.P("\tAck bool")
	g.P("}")
	g.P()
	g.P("// ", name, "Events lists the event cases of ", name, " by ascending type.")
	g.P("var ", name, "Events = []EventInfo{")
	for _, c := range env.byType() {
		g.P("\t{Type: ", c.typ.GoIdent, `, Field: "`, c.field.Desc.Name(), `", Message: "`, c.field.Message.Desc.FullName(),
			`", Method: "`, c.method, `", Ack: `, c.ack, "},")
	}
	g.P("}")
	g.P()

	g.P("// EventType returns the type of the event x carries, or")
	g.P("// ", zeroDoc, " when x carries no event.")
	g.P("func (x *", name, ") EventType() ", enum, " {")
	g.P("\tswitch x.Get", env.oneof.GoName, "().(type) {")
	for _, c := range env.cases {
		g.P("\tcase *", c.field.GoIdent, ":")
		g.P("\t\treturn ", c.typ.GoIdent)
	}
	g.P("\t}")
	g.P("\treturn ", zero)
	g.P("}")
	g.P()

	g.P("// EventCorrelationID returns the correlation id of the event x carries, \"\"")
	g.P("// for events of the whole connection, and false when x carries no event.")
	g.P("func (x *", name, ") EventCorrelationID() (string, bool) {")
	g.P("\tswitch m := x.Get", env.oneof.GoName, "().(type) {")
	for _, c := range env.cases {
		g.P("\tcase *", c.field.GoIdent, ":")
		if c.cid == nil {
			g.P("\t\treturn \"\", true")
			continue
		}
		expr := "m." + c.field.GoName
		for _, fd := range c.cid {
			expr += ".Get" + fd.GoName + "()"
		}
		g.P("\t\treturn ", expr, ", true")
	}
	g.P("\t}")
	g.P("\treturn \"\", false")
	g.P("}")
	g.P()

	g.P("// EventHandler handles the events of ", name, ", one method per event case.")
	g.P("// A decision method's nil response means allow.")
	g.P("type EventHandler interface {")
	for _, c := range env.cases {
		g.P("\t// ", c.method, " handles ", c.field.Desc.Name(), " events (", c.typ.Desc.Name(), ").")
		if c.ack {
			g.P("\t", c.method, "(", ctx, ", *", c.field.Message.GoIdent, ") error")
		} else {
			g.P("\t", c.method, "(", ctx, ", *", c.field.Message.GoIdent, ") (*", reply, ", error)")
		}
	}
	g.P("}")
	g.P()

	g.P("// UnimplementedEventHandler allows every event and accepts every ack")
	g.P("// event. Embed it to implement only some methods, and to keep compiling")
	g.P("// when the schema gains an event.")
	g.P("type UnimplementedEventHandler struct{}")
	g.P()
	g.P("var _ EventHandler = UnimplementedEventHandler{}")
	g.P()
	for _, c := range env.cases {
		if c.ack {
			g.P("// ", c.method, " accepts.")
			g.P("func (UnimplementedEventHandler) ", c.method, "(", ctx, ", *", c.field.Message.GoIdent, ") error { return nil }")
		} else {
			g.P("// ", c.method, " allows.")
			g.P("func (UnimplementedEventHandler) ", c.method, "(", ctx, ", *", c.field.Message.GoIdent, ") (*", reply, ", error) {")
			g.P("\treturn nil, nil")
			g.P("}")
		}
		g.P()
	}

	g.P("// DispatchEvent calls the method of h for the event x carries and returns")
	g.P("// its decision (nil for ack events) and error. ok is false, and h is not")
	g.P("// called, when x carries no event.")
	g.P("func DispatchEvent(ctx ", ctx, ", h EventHandler, x *", name, ") (resp *", reply, ", ok bool, err error) {")
	g.P("\tswitch m := x.Get", env.oneof.GoName, "().(type) {")
	for _, c := range env.cases {
		g.P("\tcase *", c.field.GoIdent, ":")
		if c.ack {
			g.P("\t\terr = h.", c.method, "(ctx, m.", c.field.GoName, ")")
		} else {
			g.P("\t\tresp, err = h.", c.method, "(ctx, m.", c.field.GoName, ")")
		}
	}
	g.P("\tdefault:")
	g.P("\t\treturn nil, false, nil")
	g.P("\t}")
	g.P("\treturn resp, true, err")
	g.P("}")
	g.P()
	emitEventVisitor(g, env)
}

// emitEventVisitor writes EventVisitor, which returns an R per event case,
// its UnimplementedEventVisitor base and VisitEvent: for code that treats
// events by kind without handling them (the agent's recycling).
func emitEventVisitor(g *protogen.GeneratedFile, env *eventEnvelope) {
	name := env.msg.GoIdent.GoName
	g.P("// EventVisitor returns an R for the event of a ", name, ", one method per")
	g.P("// event case; VisitEvent calls it. Unlike EventHandler it takes no context")
	g.P("// and gives no decision: it is for code that treats events by kind.")
	g.P("type EventVisitor[R any] interface {")
	for _, c := range env.cases {
		g.P("	// Visit", c.field.GoName, " visits ", c.field.Desc.Name(), " events.")
		g.P("	Visit", c.field.GoName, "(x *", name, ", m *", c.field.Message.GoIdent, ") R")
	}
	g.P("}")
	g.P()
	g.P("// UnimplementedEventVisitor returns the zero R for every event. Embed it")
	g.P("// to implement only some methods, and to keep compiling when the schema")
	g.P("// gains an event.")
	g.P("type UnimplementedEventVisitor[R any] struct{}")
	g.P()
	for _, c := range env.cases {
		g.P("// Visit", c.field.GoName, " returns the zero R.")
		g.P("func (UnimplementedEventVisitor[R]) Visit", c.field.GoName, "(*", name, ", *", c.field.Message.GoIdent, ") (r R) { return r }")
		g.P()
	}
	g.P("// VisitEvent calls the method of v for the event x carries and returns its")
	g.P("// result. ok is false, and v is not called, when x carries no event.")
	g.P("func VisitEvent[R any](v EventVisitor[R], x *", name, ") (r R, ok bool) {")
	g.P("	switch m := x.Get", env.oneof.GoName, "().(type) {")
	for _, c := range env.cases {
		g.P("	case *", c.field.GoIdent, ":")
		g.P("		return v.Visit", c.field.GoName, "(x, m.", c.field.GoName, "), true")
	}
	g.P("	}")
	g.P("	return r, false")
	g.P("}")
}

// zeroValue is the event enum's zero value, which stands for no event: its
// name for documentation and its Go expression.
func zeroValue(g *protogen.GeneratedFile, env *eventEnvelope) (doc, expr string) {
	for _, v := range env.enum.Values {
		if v.Desc.Number() == 0 {
			return string(v.Desc.Name()), g.QualifiedGoIdent(v.GoIdent)
		}
	}
	return "0", "0"
}

// header writes the preamble every generated file starts with.
func header(g *protogen.GeneratedFile, f *protogen.File) {
	g.P("// Code generated by protoc-gen-go-agentuds. DO NOT EDIT.")
	g.P("// versions:")
	g.P("// \tprotoc-gen-go-agentuds ", version)
	g.P("// source: ", f.Desc.Path())
	g.P()
	g.P("package ", f.GoPackageName)
	g.P()
}
