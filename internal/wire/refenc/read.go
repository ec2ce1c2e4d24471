package refenc

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// maxDepth bounds nesting in a payload; the reference's deepest message
// nests five levels, and a bound keeps hostile input off the stack.
const maxDepth = 32

// parse decodes a payload into a generic tree: map[string]any, []any,
// string, []byte, bool, nil, int64, uint64, float64 or json.Number. A
// payload that starts with '{' is JSON whatever was negotiated: the
// reference sends pings and cancels as JSON on MessagePack connections,
// and a MessagePack message never starts with that byte (a bare integer).
func parse(enc Encoding, p []byte) (any, error) {
	if len(p) > 0 && p[0] == '{' || enc == JSON {
		return parseJSON(p)
	}
	md := mpDecoders.Get().(*mpDecoder)
	defer mpDecoders.Put(md)
	md.r.Reset(p)
	md.d.Reset(&md.r)
	v, err := parseMsgpack(md.d, len(p), 0)
	if err != nil {
		return nil, err
	}
	if md.r.Len() > 0 {
		return nil, errors.New("trailing data after the MessagePack value")
	}
	return v, nil
}

// mpDecoder is a reusable MessagePack decoder over a payload.
type mpDecoder struct {
	r bytes.Reader
	d *msgpack.Decoder
}

var mpDecoders = sync.Pool{New: func() any {
	md := &mpDecoder{}
	md.d = msgpack.NewDecoder(&md.r)
	return md
}}

// parseMsgpack reads one value; size bounds the lengths it trusts.
func parseMsgpack(d *msgpack.Decoder, size, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deeply")
	}
	c, err := d.PeekCode()
	if err != nil {
		return nil, err
	}
	switch {
	case c == msgpcode.Nil:
		return nil, d.DecodeNil()
	case c == msgpcode.True || c == msgpcode.False:
		return d.DecodeBool()
	case msgpcode.IsFixedNum(c) || c == msgpcode.Uint8 || c == msgpcode.Uint16 ||
		c == msgpcode.Uint32 || c == msgpcode.Uint64:
		if c >= msgpcode.NegFixedNumLow && msgpcode.IsFixedNum(c) {
			return d.DecodeInt64()
		}
		return d.DecodeUint64()
	case c == msgpcode.Int8 || c == msgpcode.Int16 || c == msgpcode.Int32 || c == msgpcode.Int64:
		return d.DecodeInt64()
	case c == msgpcode.Float || c == msgpcode.Double:
		return d.DecodeFloat64()
	case msgpcode.IsString(c):
		return d.DecodeString()
	case msgpcode.IsBin(c):
		return d.DecodeBytes()
	case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
		n, err := d.DecodeArrayLen()
		if err != nil || n > size {
			return nil, errors.Join(err, errors.New("array longer than the payload"))
		}
		a := make([]any, 0, n)
		for range n {
			v, err := parseMsgpack(d, size, depth+1)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		return a, nil
	case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
		n, err := d.DecodeMapLen()
		if err != nil || n > size {
			return nil, errors.Join(err, errors.New("map longer than the payload"))
		}
		m := make(map[string]any, n)
		for range n {
			k, err := d.DecodeString()
			if err != nil {
				return nil, fmt.Errorf("map key: %w", err)
			}
			if m[k], err = parseMsgpack(d, size, depth+1); err != nil {
				return nil, err
			}
		}
		return m, nil
	}
	return nil, fmt.Errorf("unsupported MessagePack code 0x%02x", c)
}

// rd reads fields out of a parsed tree, keeping the first error so the
// translations read as plain field lists.
type rd struct{ err error }

func (r *rd) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

// rec is a struct as it arrived: a map (JSON, or MessagePack named) or an
// array (rmp_serde's positional structs).
type rec struct {
	m map[string]any
	a []any
}

func (r *rd) rec(v any, what string) rec {
	switch v := v.(type) {
	case map[string]any:
		return rec{m: v}
	case []any:
		return rec{a: v}
	case nil:
		return rec{}
	}
	r.fail("%s: want a struct, got %T", what, v)
	return rec{}
}

// get returns field name, the i-th in declaration order; nil if absent.
func (x rec) get(i int, name string) any {
	if x.m != nil {
		return x.m[name]
	}
	if i < len(x.a) {
		return x.a[i]
	}
	return nil
}

func (r *rd) str(v any, what string) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	}
	r.fail("%s: want a string, got %T", what, v)
	return ""
}

func (r *rd) optStr(v any, what string) *string {
	if v == nil {
		return nil
	}
	s := r.str(v, what)
	return &s
}

func (r *rd) boolean(v any, what string) bool {
	switch v := v.(type) {
	case nil:
		return false
	case bool:
		return v
	}
	r.fail("%s: want a bool, got %T", what, v)
	return false
}

func (r *rd) u64(v any, what string) uint64 {
	switch v := v.(type) {
	case nil:
		return 0
	case uint64:
		return v
	case int64:
		if v >= 0 {
			return uint64(v)
		}
	case json.Number:
		if n, err := strconv.ParseUint(string(v), 10, 64); err == nil {
			return n
		}
	}
	r.fail("%s: want an unsigned integer, got %v", what, v)
	return 0
}

func (r *rd) u32(v any, what string) uint32 {
	n := r.u64(v, what)
	if n > math.MaxUint32 {
		r.fail("%s: %d is out of range", what, n)
		return 0
	}
	return uint32(n)
}

func (r *rd) optU64(v any, what string) *uint64 {
	if v == nil {
		return nil
	}
	n := r.u64(v, what)
	return &n
}

func (r *rd) i64(v any, what string) int64 {
	switch v := v.(type) {
	case nil:
		return 0
	case int64:
		return v
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v)
		}
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
	}
	r.fail("%s: want an integer, got %v", what, v)
	return 0
}

func (r *rd) float(v any, what string) float64 {
	switch v := v.(type) {
	case nil:
		return 0
	case float64:
		return v
	case int64:
		return float64(v)
	case uint64:
		return float64(v)
	case json.Number:
		if f, err := v.Float64(); err == nil {
			return f
		}
	case string: // serde's "+Inf" histogram bound
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	r.fail("%s: want a number, got %v", what, v)
	return 0
}

func (r *rd) list(v any, what string) []any {
	switch v := v.(type) {
	case nil:
		return nil
	case []any:
		return v
	}
	r.fail("%s: want a list, got %T", what, v)
	return nil
}

func (r *rd) strs(v any, what string) []string {
	l := r.list(v, what)
	if len(l) == 0 {
		return nil
	}
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = r.str(e, what)
	}
	return out
}

func (r *rd) dict(v any, what string) map[string]any {
	switch v := v.(type) {
	case nil:
		return nil
	case map[string]any:
		return v
	}
	r.fail("%s: want a map, got %T", what, v)
	return nil
}

// strMap reads a HashMap<String, String>.
func (r *rd) strMap(v any, what string) map[string]string {
	m := r.dict(v, what)
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, e := range m {
		out[k] = r.str(e, what)
	}
	return out
}

// body reads body data: base64 text (what the reference sends), or raw
// MessagePack bytes (its serde_bytes path).
func (r *rd) body(v any, what string) []byte {
	switch v := v.(type) {
	case nil:
		return nil
	case []byte:
		return v
	case string:
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			r.fail("%s: %w", what, err)
		}
		return b
	}
	r.fail("%s: want base64 text or bytes, got %T", what, v)
	return nil
}

// jsonText renders a serde_json::Value as JSON text ("" for null).
func jsonText(v any) string {
	if v == nil {
		return ""
	}
	return string(appendJSON(nil, v, true))
}

// jsonValue parses JSON text into a value for a serde_json::Value field;
// text that is not JSON travels as a string.
func jsonValue(s string) any {
	if s == "" {
		return nil
	}
	v, err := parseJSON([]byte(s))
	if err != nil {
		return s
	}
	return v
}
