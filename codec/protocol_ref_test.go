package codec_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// refSection is the heading of the message reference in docs/protocol.md.
const refSection = "## 16. Message reference"

// refEntry is one message or enum of the reference: its rows in order,
// each "name number type oneof" for fields and "name number" for values.
type refEntry struct {
	enum bool
	rows []string
}

// parseReference reads the message reference: a "### `Name`" heading (with
// " (enum)" for enums) per entry, then its table or "No fields.".
func parseReference(doc string) (map[string]refEntry, error) {
	i := strings.Index(doc, "\n"+refSection+"\n")
	if i < 0 {
		return nil, fmt.Errorf("no section %q", refSection)
	}
	out := map[string]refEntry{}
	var name string
	for _, line := range strings.Split(doc[i+1:], "\n")[1:] {
		if strings.HasPrefix(line, "## ") {
			break
		}
		if h, ok := strings.CutPrefix(line, "### "); ok {
			enum := strings.HasSuffix(h, " (enum)")
			name = strings.Trim(strings.TrimSuffix(h, " (enum)"), "`")
			if _, dup := out[name]; dup {
				return nil, fmt.Errorf("%s: listed twice", name)
			}
			out[name] = refEntry{enum: enum}
			continue
		}
		cells := tableCells(line)
		if name == "" || cells == nil || strings.HasPrefix(cells[0], "---") || cells[0] == "Field" || cells[0] == "Value" {
			continue
		}
		e := out[name]
		row, err := refRow(e.enum, cells)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		e.rows = append(e.rows, row)
		out[name] = e
	}
	return out, nil
}

// refRow turns a table row into the form schemaReference gives.
func refRow(enum bool, cells []string) (string, error) {
	if enum {
		if len(cells) != 3 {
			return "", fmt.Errorf("row %q: want Value | Number | Notes", cells)
		}
		if _, err := strconv.Atoi(cells[1]); err != nil {
			return "", fmt.Errorf("row %q: number %q", cells, cells[1])
		}
		return cells[0] + " " + cells[1], nil
	}
	if len(cells) != 4 {
		return "", fmt.Errorf("row %q: want Field | Number | Type | Notes", cells)
	}
	if _, err := strconv.Atoi(cells[1]); err != nil {
		return "", fmt.Errorf("row %q: number %q", cells, cells[1])
	}
	oneof := ""
	if o, ok := strings.CutPrefix(cells[3], "oneof `"); ok {
		oneof, _, _ = strings.Cut(o, "`")
	}
	return strings.Join([]string{cells[0], cells[1], cells[2], oneof}, " "), nil
}

// schemaReference is the reference the schema's descriptors give.
func schemaReference() map[string]refEntry {
	out := map[string]refEntry{}
	short := func(n protoreflect.FullName) string { return strings.TrimPrefix(string(n), schemaPackage) }
	enums := func(es protoreflect.EnumDescriptors) {
		for i := range es.Len() {
			e := es.Get(i)
			var rows []string
			for j := range e.Values().Len() {
				v := e.Values().Get(j)
				rows = append(rows, fmt.Sprintf("%s %d", v.Name(), v.Number()))
			}
			out[short(e.FullName())] = refEntry{enum: true, rows: rows}
		}
	}
	var messages func(protoreflect.MessageDescriptors)
	messages = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			m := ms.Get(i)
			if m.IsMapEntry() {
				continue
			}
			var rows []string
			for j := range m.Fields().Len() {
				f := m.Fields().Get(j)
				oneof := ""
				if o := f.ContainingOneof(); o != nil && !o.IsSynthetic() {
					oneof = string(o.Name())
				}
				rows = append(rows, strings.Join([]string{string(f.Name()), strconv.Itoa(int(f.Number())), fieldType(f), oneof}, " "))
			}
			out[short(m.FullName())] = refEntry{rows: rows}
			enums(m.Enums())
			messages(m.Messages())
		}
	}
	for _, fd := range []protoreflect.FileDescriptor{agentv2.File_sentinel_agent_v2_agent_proto, agentv2.File_sentinel_agent_v2_options_proto} {
		enums(fd.Enums())
		messages(fd.Messages())
	}
	return out
}

// fieldType spells a field's type as the reference does.
func fieldType(f protoreflect.FieldDescriptor) string {
	base := func(f protoreflect.FieldDescriptor) string {
		switch f.Kind() {
		case protoreflect.MessageKind, protoreflect.GroupKind:
			return strings.TrimPrefix(string(f.Message().FullName()), schemaPackage)
		case protoreflect.EnumKind:
			return strings.TrimPrefix(string(f.Enum().FullName()), schemaPackage)
		}
		return f.Kind().String()
	}
	switch {
	case f.IsMap():
		return fmt.Sprintf("map<%s, %s>", base(f.MapKey()), base(f.MapValue()))
	case f.IsList():
		return "repeated " + base(f)
	case f.HasOptionalKeyword():
		return "optional " + base(f)
	}
	return base(f)
}

// compareReference lists every difference between the document's
// reference and the schema's, both ways; none means they agree.
func compareReference(doc, schema map[string]refEntry) []string {
	var problems []string
	for name, want := range schema {
		got, ok := doc[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s: missing from the document", name))
		case got.enum != want.enum:
			problems = append(problems, fmt.Sprintf("%s: enum %v in the document, %v in the schema", name, got.enum, want.enum))
		case !slices.Equal(got.rows, want.rows):
			problems = append(problems, fmt.Sprintf("%s: document rows %q, schema rows %q", name, got.rows, want.rows))
		}
	}
	for name := range doc {
		if _, ok := schema[name]; !ok {
			problems = append(problems, fmt.Sprintf("%s: no such message or enum in the schema", name))
		}
	}
	slices.Sort(problems)
	return problems
}

func TestProtocolDocReference(t *testing.T) {
	t.Parallel()
	doc, err := parseReference(readProtocolDoc(t))
	if err != nil {
		t.Fatal(err)
	}
	schema := schemaReference()
	if len(schema) < 50 {
		t.Fatalf("the schema gave %d messages and enums; expected the whole schema", len(schema))
	}
	for _, p := range compareReference(doc, schema) {
		t.Errorf("docs/protocol.md §16: %s", p)
	}
}

// TestProtocolDocReferenceDetectsDrift edits the real reference the ways
// it could drift and checks that each edit is reported.
func TestProtocolDocReferenceDetectsDrift(t *testing.T) {
	t.Parallel()
	doc := readProtocolDoc(t)
	const row = "| `action` | 2 | `FlowAction` | `PAUSE`, `RESUME` or `UPDATE_CAPACITY` (§9). |"
	const value = "| `FLOW_ACTION_RESUME` | 2 | Send events again. |"
	const oneof = "| `pong` | 7 | `Pong` | oneof `message`. |"
	for _, s := range []string{row, value, oneof} {
		if !strings.Contains(doc, s) {
			t.Fatalf("the document lost the row %q this test edits", s)
		}
	}
	edits := map[string][2]string{
		"field missing":      {row, ""},
		"wrong number":       {row, strings.Replace(row, "| 2 |", "| 3 |", 1)},
		"wrong type":         {row, strings.Replace(row, "`FlowAction`", "`uint32`", 1)},
		"wrong name":         {row, strings.Replace(row, "`action`", "`act`", 1)},
		"optional lost":      {"| `correlation_id` | 1 | `optional string` | Absent", "| `correlation_id` | 1 | `string` | Absent"},
		"extra field":        {row, row + "\n| `extra` | 9 | `string` | |"},
		"enum value missing": {value, ""},
		"enum value number":  {value, strings.Replace(value, "| 2 |", "| 5 |", 1)},
		"oneof lost":         {oneof, "| `pong` | 7 | `Pong` | |"},
		"message missing":    {"### `Pong`\n", "### `Pang`\n"},
		"enum marker lost":   {"### `FlowAction` (enum)", "### `FlowAction`"},
		"cell missing":       {row, "| `action` | 2 | `FlowAction` |"},
	}
	schema := schemaReference()
	for name, e := range edits {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(doc, e[0]) {
				t.Fatalf("the document lost %q", e[0])
			}
			edited := strings.Replace(doc, e[0], e[1], 1)
			ref, err := parseReference(edited)
			if err != nil {
				return // reported as a malformed reference: drift caught
			}
			if len(compareReference(ref, schema)) == 0 {
				t.Errorf("edit %q went unnoticed", name)
			}
		})
	}
}
