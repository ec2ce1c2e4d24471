package reftest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/vmihailenco/msgpack/v5"
)

// Field is one named value of a [Struct] or [Map], in wire order.
type Field struct {
	Name  string
	Value any
}

// Struct is a serde-derived struct: a JSON object, and in MessagePack the
// positional array rmp_serde::to_vec writes (field names are not on the wire).
// Fields skipped by skip_serializing_if are left out by the builder.
type Struct []Field

// Map is a serde map (HashMap, serde_json::Value object, or a #[serde(flatten)]
// wrapper): a JSON object and a MessagePack map, keys in the order given.
type Map []Field

// F32 is a Rust f32: MessagePack float 32 (0xca), JSON shortest form.
type F32 float32

// Unit is a unit enum variant (serialised as its name in both encodings).
type Unit string

// Variant is an externally tagged enum variant with data: {"name": value}.
func Variant(name string, value any) Map { return Map{{name, value}} }

// Encoding is a payload encoding the reference negotiates.
type Encoding string

// The reference's encoding names, as they appear in supported_encodings.
const (
	JSON    Encoding = "json"
	MsgPack Encoding = "msgpack"
)

// Marshal encodes v the way the reference does in enc. sorted applies to
// JSON only: serde_json::to_value without preserve_order sorts every object
// key (uds.rs builds its event payloads that way).
func Marshal(enc Encoding, v any, sorted bool) ([]byte, error) {
	if enc == MsgPack {
		var buf bytes.Buffer
		e := msgpack.NewEncoder(&buf)
		e.UseCompactInts(true)
		if err := encodeMsgpack(e, v); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	var buf bytes.Buffer
	if err := encodeJSON(&buf, v, sorted); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encodeMsgpack(e *msgpack.Encoder, v any) error {
	switch v := v.(type) {
	case nil:
		return e.EncodeNil()
	case bool:
		return e.EncodeBool(v)
	case string:
		return e.EncodeString(v)
	case Unit:
		return e.EncodeString(string(v))
	case []byte:
		return e.EncodeBytes(v)
	case int:
		return e.EncodeInt(int64(v))
	case int64:
		return e.EncodeInt(v)
	case uint64:
		return e.EncodeUint(v)
	case F32:
		return e.EncodeFloat32(float32(v))
	case float64:
		return e.EncodeFloat64(v)
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
	case Struct:
		if err := e.EncodeArrayLen(len(v)); err != nil {
			return err
		}
		for _, f := range v {
			if err := encodeMsgpack(e, f.Value); err != nil {
				return err
			}
		}
		return nil
	case Map:
		if err := e.EncodeMapLen(len(v)); err != nil {
			return err
		}
		for _, f := range v {
			if err := e.EncodeString(f.Name); err != nil {
				return err
			}
			if err := encodeMsgpack(e, f.Value); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("reftest: cannot encode %T", v)
}

func encodeJSON(buf *bytes.Buffer, v any, sorted bool) error {
	switch v := v.(type) {
	case Struct:
		return encodeObject(buf, []Field(v), sorted)
	case Map:
		return encodeObject(buf, []Field(v), sorted)
	case []any:
		buf.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := encodeJSON(buf, x, sorted); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
		return nil
	case Unit:
		return encodeJSON(buf, string(v), sorted)
	case F32:
		b, err := json.Marshal(float32(v))
		buf.Write(b)
		return err
	case []byte:
		return fmt.Errorf("reftest: raw bytes have no JSON form (the reference base64-encodes them itself)")
	}
	var tmp bytes.Buffer
	enc := json.NewEncoder(&tmp)
	enc.SetEscapeHTML(false) // serde_json escapes only what JSON requires
	if err := enc.Encode(v); err != nil {
		return err
	}
	buf.Write(bytes.TrimSuffix(tmp.Bytes(), []byte("\n")))
	return nil
}

func encodeObject(buf *bytes.Buffer, fields []Field, sorted bool) error {
	if sorted {
		fields = append([]Field(nil), fields...)
		sort.SliceStable(fields, func(i, j int) bool { return fields[i].Name < fields[j].Name })
	}
	buf.WriteByte('{')
	for i, f := range fields {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := encodeJSON(buf, f.Name, false); err != nil {
			return err
		}
		buf.WriteByte(':')
		if err := encodeJSON(buf, f.Value, sorted); err != nil {
			return err
		}
	}
	buf.WriteByte('}')
	return nil
}
