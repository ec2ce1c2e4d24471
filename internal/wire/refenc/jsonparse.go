package refenc

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// parseJSON reads one JSON value into the generic tree parse returns
// (objects map[string]any, numbers json.Number). It is encoding/json's
// grammar without its reflection, which made JSON answers cost more than
// the rest of a round trip.
func parseJSON(p []byte) (any, error) {
	d := jsonParser{p: p}
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	if d.skipSpace(); d.i != len(d.p) {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

type jsonParser struct {
	p []byte
	i int
}

func (d *jsonParser) skipSpace() {
	for d.i < len(d.p) {
		switch d.p[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *jsonParser) errorf(format string, args ...any) error {
	return fmt.Errorf("JSON at offset %d: "+format, append([]any{d.i}, args...)...)
}

func (d *jsonParser) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, d.errorf("nested too deeply")
	}
	d.skipSpace()
	if d.i >= len(d.p) {
		return nil, d.errorf("unexpected end")
	}
	switch c := d.p[d.i]; {
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '"':
		return d.str()
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	}
	for _, lit := range [...]struct {
		text string
		v    any
	}{{"true", true}, {"false", false}, {"null", nil}} {
		if len(d.p)-d.i >= len(lit.text) && string(d.p[d.i:d.i+len(lit.text)]) == lit.text {
			d.i += len(lit.text)
			return lit.v, nil
		}
	}
	return nil, d.errorf("unexpected %q", d.p[d.i])
}

func (d *jsonParser) object(depth int) (any, error) {
	d.i++ // '{'
	m := make(map[string]any, 8)
	d.skipSpace()
	if d.i < len(d.p) && d.p[d.i] == '}' {
		d.i++
		return m, nil
	}
	for {
		d.skipSpace()
		if d.i >= len(d.p) || d.p[d.i] != '"' {
			return nil, d.errorf("want an object key")
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		if d.skipSpace(); d.i >= len(d.p) || d.p[d.i] != ':' {
			return nil, d.errorf("want ':'")
		}
		d.i++
		if m[k], err = d.value(depth + 1); err != nil {
			return nil, err
		}
		if d.skipSpace(); d.i >= len(d.p) {
			return nil, d.errorf("unexpected end in an object")
		}
		switch d.p[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return m, nil
		default:
			return nil, d.errorf("want ',' or '}'")
		}
	}
}

func (d *jsonParser) array(depth int) (any, error) {
	d.i++ // '['
	a := []any{}
	d.skipSpace()
	if d.i < len(d.p) && d.p[d.i] == ']' {
		d.i++
		return a, nil
	}
	for {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		if d.skipSpace(); d.i >= len(d.p) {
			return nil, d.errorf("unexpected end in an array")
		}
		switch d.p[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return a, nil
		default:
			return nil, d.errorf("want ',' or ']'")
		}
	}
}

// number checks JSON's number grammar and keeps the text.
func (d *jsonParser) number() (any, error) {
	start := d.i
	if d.p[d.i] == '-' {
		d.i++
	}
	digits := func() int {
		n := 0
		for d.i < len(d.p) && d.p[d.i] >= '0' && d.p[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	intStart := d.i
	if n := digits(); n == 0 || n > 1 && d.p[intStart] == '0' {
		return nil, d.errorf("bad number")
	}
	if d.i < len(d.p) && d.p[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return nil, d.errorf("bad number")
		}
	}
	if d.i < len(d.p) && (d.p[d.i] == 'e' || d.p[d.i] == 'E') {
		d.i++
		if d.i < len(d.p) && (d.p[d.i] == '+' || d.p[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return nil, d.errorf("bad number")
		}
	}
	return json.Number(d.p[start:d.i]), nil
}

// str reads a string; invalid UTF-8 becomes U+FFFD, as encoding/json does.
func (d *jsonParser) str() (string, error) {
	d.i++ // '"'
	start := d.i
	for d.i < len(d.p) {
		c := d.p[d.i]
		switch {
		case c == '"':
			s := d.p[start:d.i]
			d.i++
			if utf8.Valid(s) {
				return string(s), nil
			}
			return string([]rune(string(s))), nil
		case c == '\\':
			return d.strEscaped(start)
		case c < 0x20:
			return "", d.errorf("control character in a string")
		}
		d.i++
	}
	return "", d.errorf("unterminated string")
}

func (d *jsonParser) strEscaped(start int) (string, error) {
	b := append([]byte(nil), d.p[start:d.i]...)
	for d.i < len(d.p) {
		c := d.p[d.i]
		switch {
		case c == '"':
			d.i++
			if utf8.Valid(b) {
				return string(b), nil
			}
			return string([]rune(string(b))), nil
		case c < 0x20:
			return "", d.errorf("control character in a string")
		case c != '\\':
			b = append(b, c)
			d.i++
			continue
		}
		if d.i+1 >= len(d.p) {
			break
		}
		e := d.p[d.i+1]
		d.i += 2
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return "", d.errorf("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				// Only a high surrogate pairs; a lone low one stands alone,
				// so "\udc00\udc00" is two replacement runes, as in encoding/json.
				if r2, ok := d.pairLow(r); ok {
					r = utf16.DecodeRune(r, r2)
				} else {
					r = utf8.RuneError
				}
			}
			b = utf8.AppendRune(b, r)
		default:
			return "", d.errorf("bad escape")
		}
	}
	return "", d.errorf("unterminated string")
}

func (d *jsonParser) hex4() (rune, bool) {
	if len(d.p)-d.i < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(d.p[d.i:d.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	d.i += 4
	return rune(n), true
}

// pairLow reads the "\uDC00".."\uDFFF" that completes high surrogate hi;
// after anything else it reads nothing.
func (d *jsonParser) pairLow(hi rune) (rune, bool) {
	if hi >= 0xdc00 {
		return 0, false
	}
	if len(d.p)-d.i < 6 || d.p[d.i] != '\\' || d.p[d.i+1] != 'u' {
		return 0, false
	}
	save := d.i
	d.i += 2
	r, ok := d.hex4()
	if !ok || r < 0xdc00 || r > 0xdfff {
		d.i = save
		return 0, false
	}
	return r, true
}
