package codec_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/agentwire/agentwire/codec"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// protocolDoc is the wire specification whose tables these tests hold to
// the generated code, so the document cannot drift from the schema.
const protocolDoc = "../docs/protocol.md"

const (
	dirProxyToAgent = "proxy → agent"
	dirAgentToProxy = "agent → proxy"
	schemaPackage   = "sentinel.agent.v2."
)

// docFrame is one row of the frame-type table.
type docFrame struct {
	Type      agentv2.FrameType
	Direction string
	Field     string
	Message   string // without the package prefix
}

func (f docFrame) key() string { return fmt.Sprintf("%s 0x%02x", f.Direction, uint8(f.Type)) }

func readProtocolDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(protocolDoc)
	if err != nil {
		t.Fatalf("read the protocol document: %v", err)
	}
	return string(b)
}

// markdownTable returns the rows (cells trimmed, backticks removed) of the
// first table in doc whose header cells are exactly header.
func markdownTable(doc string, header ...string) ([][]string, error) {
	lines := strings.Split(doc, "\n")
	for i, line := range lines {
		if !slices.Equal(tableCells(line), header) {
			continue
		}
		if i+1 >= len(lines) || !strings.HasPrefix(strings.TrimSpace(lines[i+1]), "|---") {
			return nil, fmt.Errorf("table %q: no separator line after the header", header)
		}
		var rows [][]string
		for _, l := range lines[i+2:] {
			if !strings.HasPrefix(strings.TrimSpace(l), "|") {
				break
			}
			cells := tableCells(l)
			if len(cells) != len(header) {
				return nil, fmt.Errorf("table %q: row %q has %d cells, want %d", header, l, len(cells), len(header))
			}
			rows = append(rows, cells)
		}
		return rows, nil
	}
	return nil, fmt.Errorf("no table with header %q", header)
}

func tableCells(line string) []string {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") || len(line) < 2 {
		return nil
	}
	cells := strings.Split(line[1:len(line)-1], "|")
	for i, c := range cells {
		cells[i] = strings.Trim(strings.TrimSpace(c), "`")
	}
	return cells
}

// parseFrameTable reads the "Type | Direction | Field | Message" table.
func parseFrameTable(doc string) ([]docFrame, error) {
	rows, err := markdownTable(doc, "Type", "Direction", "Field", "Message")
	if err != nil {
		return nil, err
	}
	frames := make([]docFrame, 0, len(rows))
	for _, r := range rows {
		v, err := strconv.ParseUint(r[0], 0, 8)
		if err != nil || !strings.HasPrefix(r[0], "0x") {
			return nil, fmt.Errorf("row %q: type %q is not a one-byte hex number like 0x1f", r, r[0])
		}
		frames = append(frames, docFrame{Type: agentv2.FrameType(v), Direction: r[1], Field: r[2], Message: r[3]})
	}
	return frames, nil
}

// generatedFrames is the frame table the schema generated, in the document's terms.
func generatedFrames() []docFrame {
	var out []docFrame
	for _, set := range []struct {
		dir    string
		frames []agentv2.FrameInfo
	}{
		{dirProxyToAgent, agentv2.ProxyToAgentFrames},
		{dirAgentToProxy, agentv2.AgentToProxyFrames},
	} {
		for _, f := range set.frames {
			out = append(out, docFrame{
				Type:      f.Type,
				Direction: set.dir,
				Field:     f.Field,
				Message:   strings.TrimPrefix(f.Message, schemaPackage),
			})
		}
	}
	return out
}

// compareFrames lists every difference between the document's table and
// the generated one; none means they agree.
func compareFrames(doc, gen []docFrame) []string {
	var problems []string
	want := make(map[string]docFrame, len(gen))
	for _, f := range gen {
		want[f.key()] = f
	}
	seen := make(map[string]bool, len(doc))
	for _, f := range doc {
		k := f.key()
		if seen[k] {
			problems = append(problems, fmt.Sprintf("%s: listed twice", k))
			continue
		}
		seen[k] = true
		g, ok := want[k]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s (%s): no such frame type in the schema", k, f.Field))
		case g != f:
			problems = append(problems, fmt.Sprintf("%s: document says %s/%s, schema says %s/%s", k, f.Field, f.Message, g.Field, g.Message))
		}
	}
	for _, g := range gen {
		if !seen[g.key()] {
			problems = append(problems, fmt.Sprintf("%s (%s %s): missing from the document", g.key(), g.Field, g.Message))
		}
	}
	return problems
}

func TestProtocolDocFrameTable(t *testing.T) {
	t.Parallel()
	doc := readProtocolDoc(t)
	frames, err := parseFrameTable(doc)
	if err != nil {
		t.Fatal(err)
	}
	gen := generatedFrames()
	if len(gen) == 0 {
		t.Fatal("the generated frame tables are empty")
	}
	for _, p := range compareFrames(frames, gen) {
		t.Errorf("docs/protocol.md frame table: %s", p)
	}
}

// TestProtocolDocFrameTableDetectsDrift edits the real table the ways it
// could drift and checks that each edit is reported.
func TestProtocolDocFrameTableDetectsDrift(t *testing.T) {
	t.Parallel()
	doc := readProtocolDoc(t)
	const row = "| `0x20` | agent → proxy | `response` | `AgentResponse` |"
	if !strings.Contains(doc, row) {
		t.Fatalf("the document lost the row %q this test edits", row)
	}
	edits := map[string]string{
		"row missing":         "",
		"wrong type":          "| `0x21` | agent → proxy | `response` | `AgentResponse` |",
		"wrong direction":     "| `0x20` | proxy → agent | `response` | `AgentResponse` |",
		"wrong field":         "| `0x20` | agent → proxy | `decision` | `AgentResponse` |",
		"wrong message":       "| `0x20` | agent → proxy | `response` | `AgentDecision` |",
		"duplicated row":      row + "\n" + row,
		"extra row":           row + "\n| `0x7f` | agent → proxy | `future` | `Future` |",
		"type not hex":        "| `32` | agent → proxy | `response` | `AgentResponse` |",
		"full message name":   "| `0x20` | agent → proxy | `response` | `sentinel.agent.v2.AgentResponse` |",
		"cell missing in row": "| `0x20` | agent → proxy | `response` |",
	}
	gen := generatedFrames()
	for name, replacement := range edits {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if replacement != "" {
				replacement += "\n"
			}
			edited := strings.Replace(doc, row+"\n", replacement, 1)
			frames, err := parseFrameTable(edited)
			if err != nil {
				return // rejected while parsing: drift detected
			}
			if p := compareFrames(frames, gen); len(p) == 0 {
				t.Errorf("edit %q went unnoticed", name)
			}
		})
	}
}

// TestProtocolDocExampleFrames decodes each example frame of the document
// with the codec and compares it with the envelope written beside it, and
// encodes that envelope again to check the length and type bytes.
func TestProtocolDocExampleFrames(t *testing.T) {
	t.Parallel()
	rows, err := markdownTable(readProtocolDoc(t), "Direction", "Bytes", "Envelope")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatal("no example frames in the document")
	}
	for i, r := range rows {
		name, _, _ := strings.Cut(r[2], " ")
		t.Run(fmt.Sprintf("%d_%s", i, name), func(t *testing.T) {
			t.Parallel()
			raw, err := hex.DecodeString(strings.ReplaceAll(r[1], " ", ""))
			if err != nil {
				t.Fatalf("bytes %q: %v", r[1], err)
			}
			var got, want proto.Message
			rd := codec.NewReader(bytes.NewReader(raw), 0)
			switch r[0] {
			case dirProxyToAgent:
				m, w := &agentv2.ProxyToAgent{}, &agentv2.ProxyToAgent{}
				err, got, want = rd.ReadProxyToAgent(m), m, w
			case dirAgentToProxy:
				m, w := &agentv2.AgentToProxy{}, &agentv2.AgentToProxy{}
				err, got, want = rd.ReadAgentToProxy(m), m, w
			default:
				t.Fatalf("direction %q", r[0])
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if _, _, err := rd.ReadFrame(); err == nil {
				t.Errorf("bytes after the frame")
			}
			if err := prototext.Unmarshal([]byte(r[2]), want); err != nil {
				t.Fatalf("envelope %q: %v", r[2], err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("frame decodes to %v, document says %v", prototext.Format(got), prototext.Format(want))
			}
			// Re-encoding may order fields differently; the header must match.
			enc, err := codec.AppendFrame(nil, want.(codec.Frame), 0)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if !bytes.Equal(enc[:agentv2.FrameHeaderSize], raw[:agentv2.FrameHeaderSize]) || len(enc) != len(raw) {
				t.Errorf("encoding the envelope gives header % x and %d bytes, document has % x and %d",
					enc[:agentv2.FrameHeaderSize], len(enc), raw[:agentv2.FrameHeaderSize], len(raw))
			}
			again := want.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(enc[agentv2.FrameHeaderSize:], again); err != nil || !proto.Equal(again, want) {
				t.Errorf("round trip of the envelope failed (%v): got %v", err, again)
			}
		})
	}
}
