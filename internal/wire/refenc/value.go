package refenc

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// obj is a serde struct or map on its way out: keys in serde's order.
// Positional objects are structs rmp_serde writes as arrays; the others
// (flattened events, HashMaps) are maps in both encodings.
type obj struct {
	keys []string
	vals []any
	pos  bool
}

// strct starts a struct (positional in MessagePack), mp a map.
func strct(n int) *obj { return &obj{keys: make([]string, 0, n), vals: make([]any, 0, n), pos: true} }
func mp(n int) *obj    { return &obj{keys: make([]string, 0, n), vals: make([]any, 0, n)} }

func (o *obj) add(k string, v any) *obj {
	o.keys = append(o.keys, k)
	o.vals = append(o.vals, v)
	return o
}

// f32 is a serde f32, written as a MessagePack float32.
type f32 float32

// opt is an Option<T>: nil for None.
func optStr(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func optU64(v *uint64) any {
	if v == nil {
		return nil
	}
	return *v
}

// appendJSON writes v as serde_json would; sorted writes every object's
// keys in order, as serde_json::Value (a BTreeMap) does.
func appendJSON(b []byte, v any, sorted bool) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...)
	case string:
		return appendJSONString(b, v)
	case bool:
		return strconv.AppendBool(b, v)
	case uint64:
		return strconv.AppendUint(b, v, 10)
	case uint32:
		return strconv.AppendUint(b, uint64(v), 10)
	case int64:
		return strconv.AppendInt(b, v, 10)
	case int32:
		return strconv.AppendInt(b, int64(v), 10)
	case f32:
		return appendJSONFloat(b, float64(v), 32)
	case float64:
		return appendJSONFloat(b, v, 64)
	case json.Number:
		return append(b, v...)
	case []string:
		b = append(b, '[')
		for i, s := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s)
		}
		return append(b, ']')
	case []any:
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, e, sorted)
		}
		return append(b, ']')
	case map[string]any:
		return appendJSON(b, fromMap(v), sorted)
	case *obj:
		order := jsonOrder(v, sorted)
		b = append(b, '{')
		for n, i := range order {
			if n > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, v.keys[i])
			b = append(b, ':')
			b = appendJSON(b, v.vals[i], sorted)
		}
		return append(b, '}')
	}
	return append(b, "null"...)
}

func jsonOrder(o *obj, sorted bool) []int {
	order := make([]int, len(o.keys))
	for i := range order {
		order[i] = i
	}
	if sorted {
		slices.SortStableFunc(order, func(a, b int) int {
			switch {
			case o.keys[a] < o.keys[b]:
				return -1
			case o.keys[a] > o.keys[b]:
				return 1
			}
			return 0
		})
	}
	return order
}

// fromMap turns a decoded JSON object into an obj with sorted keys, as
// serde_json::Value keeps them.
func fromMap(m map[string]any) *obj {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	o := mp(len(keys))
	for _, k := range keys {
		o.add(k, m[k])
	}
	return o
}

// appendJSONFloat writes f as serde_json does: integral values keep ".0",
// non-finite values (which JSON lacks) become null.
func appendJSONFloat(b []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e16 {
		b = strconv.AppendFloat(b, f, 'f', -1, bits)
		return append(b, ".0"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

const hexDigits = "0123456789abcdef"

// appendJSONString escapes as serde_json does: quotes, backslashes and
// control characters only; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				b = append(b, "\ufffd"...)
			} else {
				b = append(b, s[i:i+n]...)
			}
			i += n
			continue
		}
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			} else {
				b = append(b, c)
			}
		}
		i++
	}
	return append(b, '"')
}

// encodeMsgpack writes v as rmp_serde::to_vec does.
func encodeMsgpack(e *msgpack.Encoder, v any) error {
	switch v := v.(type) {
	case nil:
		return e.EncodeNil()
	case string:
		return e.EncodeString(v)
	case bool:
		return e.EncodeBool(v)
	case uint64:
		return e.EncodeUint(v)
	case uint32:
		return e.EncodeUint(uint64(v))
	case int64:
		return e.EncodeInt(v)
	case int32:
		return e.EncodeInt(int64(v))
	case f32:
		return e.EncodeFloat32(float32(v))
	case float64:
		return e.EncodeFloat64(v)
	case []byte:
		return e.EncodeBytes(v)
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return e.EncodeInt(n)
		}
		if n, err := strconv.ParseUint(string(v), 10, 64); err == nil {
			return e.EncodeUint(n)
		}
		f, _ := v.Float64()
		return e.EncodeFloat64(f)
	case []string:
		if err := e.EncodeArrayLen(len(v)); err != nil {
			return err
		}
		for _, s := range v {
			if err := e.EncodeString(s); err != nil {
				return err
			}
		}
		return nil
	case []any:
		if err := e.EncodeArrayLen(len(v)); err != nil {
			return err
		}
		for _, x := range v {
			if err := encodeMsgpack(e, x); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		return encodeMsgpack(e, fromMap(v))
	case *obj:
		var err error
		if v.pos {
			err = e.EncodeArrayLen(len(v.vals))
		} else {
			err = e.EncodeMapLen(len(v.vals))
		}
		if err != nil {
			return err
		}
		for i, x := range v.vals {
			if !v.pos {
				if err := e.EncodeString(v.keys[i]); err != nil {
					return err
				}
			}
			if err := encodeMsgpack(e, x); err != nil {
				return err
			}
		}
		return nil
	}
	return e.EncodeNil()
}
