package codec

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpora in testdata/fuzz")

// fuzzMaxFrame keeps fuzzed headers from announcing more than a fuzzer can
// usefully feed.
const fuzzMaxFrame = 1 << 20

// FuzzReadFrame: any byte stream yields frames or typed errors, never a
// panic; full and byte-by-byte reads agree; every payload decodes or fails
// with a typed error in both directions.
func FuzzReadFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		full := readStream(t, NewReader(bytes.NewReader(data), fuzzMaxFrame), len(data))
		oneByte := readStream(t, NewReader(iotest.OneByteReader(bytes.NewReader(data)), fuzzMaxFrame), len(data))
		if len(full) != len(oneByte) {
			t.Fatalf("full read: %d results, byte by byte: %d", len(full), len(oneByte))
		}
		for i := range full {
			if full[i] != oneByte[i] {
				t.Fatalf("result %d: full read %+v, byte by byte %+v", i, full[i], oneByte[i])
			}
		}
	})
}

type frameResult struct {
	typ     agentv2.FrameType
	payload string
	err     error // the sentinel
	code    agentwire.Code
}

// readStream reads frames until a fatal error, checking each result.
func readStream(t *testing.T, r *Reader, size int) []frameResult {
	var out []frameResult
	for {
		typ, payload, err := r.ReadFrame()
		if err != nil {
			sentinel := typedError(t, err, ErrZeroLength, ErrFrameTooLarge, ErrTruncated, io.EOF)
			if !IsFatal(err) {
				t.Fatalf("ReadFrame error %v is not fatal", err)
			}
			return append(out, frameResult{err: sentinel, code: agentwire.CodeOf(err)})
		}
		if len(out) > size/agentv2.FrameHeaderSize {
			t.Fatalf("%d frames from %d bytes", len(out), size)
		}
		for _, d := range directions {
			for _, unsafe := range []bool{false, true} {
				err := Decode(d.new(), typ, payload, d.known, unsafe)
				if err == nil {
					continue
				}
				if d.known(typ) {
					typedError(t, err, ErrMalformed)
				} else {
					typedError(t, err, ErrUnknownFrameType)
				}
			}
		}
		out = append(out, frameResult{typ: typ, payload: string(payload)})
	}
}

// typedError fails unless err is an *agentwire.Error wrapping one of the
// sentinels, and returns that sentinel.
func typedError(t *testing.T, err error, sentinels ...error) error {
	t.Helper()
	var aerr *agentwire.Error
	if !errors.As(err, &aerr) {
		t.Fatalf("error %v (%T) is not an *agentwire.Error", err, err)
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s
		}
	}
	t.Fatalf("error %v wraps none of %v", err, sentinels)
	return nil
}

func FuzzDecodeProxyToAgent(f *testing.F) {
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) { fuzzDecode(t, proxyToAgent, typ, payload, false) })
}

func FuzzDecodeAgentToProxy(f *testing.F) {
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) { fuzzDecode(t, agentToProxy, typ, payload, false) })
}

func FuzzDecodeProxyToAgentUnsafe(f *testing.F) {
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) { fuzzDecode(t, proxyToAgent, typ, payload, true) })
}

func FuzzDecodeAgentToProxyUnsafe(f *testing.F) {
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) { fuzzDecode(t, agentToProxy, typ, payload, true) })
}

// fuzzDecode: decoding never panics or touches its input, fails only with
// typed errors, and a decoded message re-encodes to a frame of the same type
// that decodes to an equal message. The unsafe decoders agree with the safe
// ones.
func fuzzDecode(t *testing.T, d direction, typ byte, payload []byte, unsafe bool) {
	ft := agentv2.FrameType(typ)
	orig := bytes.Clone(payload)
	m := d.new()
	err := Decode(m, ft, payload, d.known, unsafe)
	if !bytes.Equal(payload, orig) {
		t.Fatalf("Decode changed its input")
	}
	if unsafe {
		safe := d.new()
		safeErr := Decode(safe, ft, payload, d.known, false)
		if (err == nil) != (safeErr == nil) {
			t.Fatalf("unsafe decode: %v, safe decode: %v", err, safeErr)
		}
		if err == nil {
			fuzzEqual(t, d, m, safe)
		}
	}
	if err != nil {
		if d.known(ft) {
			typedError(t, err, ErrMalformed)
			if c := agentwire.CodeOf(err); c != agentwire.CodeInternal {
				t.Fatalf("malformed payload: code %v", c)
			}
		} else {
			typedError(t, err, ErrUnknownFrameType)
			if c := agentwire.CodeOf(err); c != agentwire.CodeUnimplemented || IsFatal(err) {
				t.Fatalf("unknown type: code %v, fatal %v", c, IsFatal(err))
			}
		}
		return
	}
	if m.FrameType() != ft {
		t.Fatalf("decoded a frame of type 0x%02x into a message of type 0x%02x", typ, uint8(m.FrameType()))
	}
	frame, err := AppendFrame(nil, m, 0)
	if err != nil {
		t.Fatalf("re-encode: %v", err)
	}
	if frame[4] != typ {
		t.Fatalf("re-encoded type 0x%02x, want 0x%02x", frame[4], typ)
	}
	r := NewReader(bytes.NewReader(frame), 0)
	again := d.new()
	if err := d.read(r, again, unsafe); err != nil {
		t.Fatalf("decode the re-encoded frame: %v", err)
	}
	fuzzEqual(t, d, again, m)
	if _, _, err := r.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the re-encoded frame: %v, want EOF", err)
	}
}

// fuzzEqual compares with EqualVT. EqualVT compares floats with !=, so a
// NaN never equals itself; messages holding one must then be proto.Equal,
// which treats NaNs as equal.
func fuzzEqual(t *testing.T, d direction, got, want message) {
	t.Helper()
	if d.equalVT(got, want) {
		return
	}
	if hasNaN(want.ProtoReflect()) && proto.Equal(got, want) {
		return
	}
	t.Fatalf("messages differ\n got: %v\nwant: %v", got, want)
}

func hasNaN(m protoreflect.Message) bool {
	found := false
	isNaN := func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch fd.Kind() {
		case protoreflect.FloatKind, protoreflect.DoubleKind:
			return math.IsNaN(v.Float())
		case protoreflect.MessageKind, protoreflect.GroupKind:
			return hasNaN(v.Message())
		}
		return false
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			for i := 0; i < v.List().Len() && !found; i++ {
				found = isNaN(fd, v.List().Get(i))
			}
		case fd.IsMap():
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				found = isNaN(fd.MapValue(), mv)
				return !found
			})
		default:
			found = isNaN(fd, v)
		}
		return !found
	})
	return found
}

// seedCorpus returns the seed inputs of each fuzz target: valid frames of
// several types and broken ones.
func seedCorpus(t *testing.T) map[string]map[string][]any {
	deterministic := proto.MarshalOptions{Deterministic: true}
	payload := func(m message) []byte {
		b, err := deterministic.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	decodeSeeds := func(d direction, other direction) map[string][]any {
		seeds := map[string][]any{}
		for i, info := range d.frames {
			if i%2 == 1 && i != 1 { // a handful, not all
				continue
			}
			seeds["valid-"+info.Field] = []any{byte(info.Type), payload(d.populated(t, info, uint64(i+1), i))}
		}
		p := payload(d.populated(t, d.frames[1], 1, 1))
		seeds["mismatched-type"] = []any{byte(d.frames[2].Type), p}
		seeds["truncated-payload"] = []any{byte(d.frames[1].Type), p[:len(p)/2]}
		seeds["empty-payload"] = []any{byte(d.frames[0].Type), []byte{}}
		seeds["event-id-only"] = []any{byte(d.frames[0].Type), []byte{0xa0, 0x06, 0x2a}}
		seeds["bad-tag"] = []any{byte(d.frames[0].Type), []byte{0x07, 0x01}}
		seeds["huge-length"] = []any{byte(d.frames[1].Type), []byte{0x12, 0xff, 0xff, 0xff, 0xff, 0x0f}}
		seeds["unknown-type"] = []any{byte(0x7f), p}
		seeds["other-direction"] = []any{byte(other.frames[1].Type), payload(other.populated(t, other.frames[1], 1, 1))}
		return seeds
	}

	frame := func(d direction, i int) []byte {
		info := d.frames[i]
		return frameBytes(info.Type, payload(d.populated(t, info, uint64(i+1), i)))
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	valid := frame(proxyToAgent, 1)
	readSeeds := map[string][]any{
		"valid-proxy-stream":  {cat(frame(proxyToAgent, 0), frame(proxyToAgent, 1), frame(proxyToAgent, 2), frame(proxyToAgent, 10))},
		"valid-agent-stream":  {cat(frame(agentToProxy, 0), frame(agentToProxy, 1), frame(agentToProxy, 2), frame(agentToProxy, 8))},
		"unknown-then-valid":  {cat(frameBytes(0x7f, []byte("newer")), frameBytes(0, nil), valid)},
		"zero-length":         {cat([]byte{0, 0, 0, 0}, valid)},
		"oversize":            {cat([]byte{0x40, 0, 0, 0, 0x10}, valid)},
		"truncated-header":    {valid[:3]},
		"truncated-payload":   {cat(valid, valid[:len(valid)-3])},
		"mismatched-type":     {cat(frameBytes(agentv2.ProxyToAgentFrameCancel, valid[5:]))},
		"malformed-payload":   {frameBytes(agentv2.ProxyToAgentFrameRequestHeaders, []byte{0x12, 0xff, 0xff, 0xff, 0x0f})},
		"empty":               {[]byte{}},
		"type-only-frames":    {cat(frameBytes(0x10, nil), frameBytes(0x20, nil))},
		"length-one-over-max": {[]byte{0x00, 0x10, 0x00, 0x01, 0x10}},
	}
	return map[string]map[string][]any{
		"FuzzReadFrame":                readSeeds,
		"FuzzDecodeProxyToAgent":       decodeSeeds(proxyToAgent, agentToProxy),
		"FuzzDecodeAgentToProxy":       decodeSeeds(agentToProxy, proxyToAgent),
		"FuzzDecodeProxyToAgentUnsafe": decodeSeeds(proxyToAgent, agentToProxy),
		"FuzzDecodeAgentToProxyUnsafe": decodeSeeds(agentToProxy, proxyToAgent),
	}
}

// corpusFile encodes values in go test's corpus file format.
func corpusFile(vals []any) []byte {
	b := []byte("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case byte:
			b = fmt.Appendf(b, "byte(%q)\n", v)
		case []byte:
			b = fmt.Appendf(b, "[]byte(%q)\n", v)
		default:
			panic(fmt.Sprintf("corpusFile: %T", v))
		}
	}
	return b
}

// TestSeedCorpus checks that every fuzz target has its committed seeds;
// go test -run TestSeedCorpus -update-corpus ./codec rewrites them. (Plain
// go test runs each target over its seeds.)
func TestSeedCorpus(t *testing.T) {
	for target, seeds := range seedCorpus(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		if *updateCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, vals := range seeds {
				if err := os.WriteFile(filepath.Join(dir, name), corpusFile(vals), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		for name := range seeds {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				t.Errorf("seed missing (run with -update-corpus): %v", err)
			}
		}
	}
}
