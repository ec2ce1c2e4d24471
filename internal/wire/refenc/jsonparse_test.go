package refenc

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// stdJSON is encoding/json's reading of p, the reference for parseJSON.
func stdJSON(p []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(p))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if len(bytes.TrimLeft(p[d.InputOffset():], " \t\r\n")) > 0 {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

var jsonSamples = []string{
	`{}`, `[]`, `{"a":[1,-2.5e3,0,true,false,null,"x"]}`, ` {"k" : { "n" : [ ] } } `,
	`"\u00e9\ud83d\ude00\n\t\"\\\/"`, `"\ud83d"`, `"\ud83dx"`, `"\udC00\udC00"`, `"\ud83d\ud83d\ude00"`, `"\ude00\ud83d"`, "\"\xff\xfe\"", `0`, `-0.0e+1`,
	`01`, `1.`, `-`, `{"a":}`, `{"a" 1}`, `[1,]`, `{,}`, `"\x"`, "\"a\x01\"", `tru`, `nul`, `{"a":1}x`,
	`{"a":1,"a":2}`, `18446744073709551615`,
}

func TestParseJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, s := range jsonSamples {
		checkParseJSON(t, []byte(s))
	}
}

func checkParseJSON(t *testing.T, p []byte) {
	got, err := parseJSON(p)
	want, werr := stdJSON(p)
	if (err == nil) != (werr == nil) {
		t.Fatalf("%q: parseJSON err %v, encoding/json err %v", p, err, werr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q: got %#v, want %#v", p, got, want)
	}
}

// FuzzParseJSON: parseJSON accepts what encoding/json accepts and reads
// the same values (below the depth bound).
func FuzzParseJSON(f *testing.F) {
	for _, s := range jsonSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		if bytes.Count(p, []byte("["))+bytes.Count(p, []byte("{")) > maxDepth {
			return
		}
		checkParseJSON(t, p)
	})
}
