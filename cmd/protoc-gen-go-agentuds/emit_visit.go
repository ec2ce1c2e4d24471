package main

import (
	"google.golang.org/protobuf/compiler/protogen"
)

// emitVisitors writes, for every framed envelope, a visitor interface with
// one method per oneof case that is not an event, and the function that
// calls it: the receiving side of a connection implements the interface
// instead of switching over the cases, and a case added to the schema
// becomes a method it must implement. Events go through DispatchEvent.
func emitVisitors(plugin *protogen.Plugin, f *protogen.File, envs []envelope, events *eventEnvelope) {
	g := plugin.NewGeneratedFile(f.GeneratedFilenamePrefix+"_visit.pb.go", f.GoImportPath)
	header(g, f)
	for i, env := range envs {
		name := env.msg.GoIdent.GoName
		var cases []*protogen.Field
		isEvent := map[*protogen.Field]bool{}
		if events != nil && events.oneof == env.oneof {
			for _, c := range events.cases {
				isEvent[c.field] = true
			}
		}
		for _, c := range env.oneof.Fields {
			if !isEvent[c] {
				cases = append(cases, c)
			}
		}
		visitor, visit := name+"Visitor", "Visit"+name
		if len(isEvent) > 0 {
			visitor, visit = name+"ControlVisitor", "Visit"+name+"Control"
		}
		if i > 0 {
			g.P()
		}
		if len(isEvent) > 0 {
			g.P("// ", visitor, " handles the cases of ", name, " that are not events,")
			g.P("// one method per case (events go to an EventHandler through")
			g.P("// DispatchEvent). Each method gets the envelope and the case's message;")
		} else {
			g.P("// ", visitor, " handles the cases of ", name, ", one method per case.")
			g.P("// Each method gets the envelope and the case's message;")
		}
		g.P("// ", visit, " calls them.")
		g.P("type ", visitor, " interface {")
		for _, c := range cases {
			g.P("\t// Visit", c.GoName, " handles ", c.Desc.Name(), " (", c.Message.Desc.Name(), ").")
			g.P("\tVisit", c.GoName, "(x *", name, ", m *", c.Message.GoIdent, ") error")
		}
		g.P("}")
		g.P()
		g.P("// ", visit, " calls the method of v for the case x sets and returns its")
		if len(isEvent) > 0 {
			g.P("// error. known is false, and v is not called, when x carries an event or")
			g.P("// no case this version knows (a newer peer's, on a transport without")
			g.P("// frame types).")
		} else {
			g.P("// error. known is false, and v is not called, when x sets no case this")
			g.P("// version knows (a newer peer's, on a transport without frame types).")
		}
		g.P("func ", visit, "(v ", visitor, ", x *", name, ") (known bool, err error) {")
		g.P("\tswitch m := x.Get", env.oneof.GoName, "().(type) {")
		for _, c := range cases {
			g.P("\tcase *", c.GoIdent, ":")
			g.P("\t\treturn true, v.Visit", c.GoName, "(x, m.", c.GoName, ")")
		}
		g.P("\t}")
		g.P("\treturn false, nil")
		g.P("}")
	}
}
