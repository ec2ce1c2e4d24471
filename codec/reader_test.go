package codec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/agentwire/agentwire"
	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// TestFrameTables checks the generated tables against the schema: every
// oneof case of each envelope has exactly one frame type, and the lookup
// functions agree with the tables.
func TestFrameTables(t *testing.T) {
	t.Parallel()
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			desc := d.new().ProtoReflect().Descriptor()
			oneof := desc.Oneofs().ByName("message")
			if oneof == nil {
				t.Fatalf("%s has no oneof message", desc.FullName())
			}
			if len(d.frames) != oneof.Fields().Len() {
				t.Errorf("%d frame types for %d oneof cases", len(d.frames), oneof.Fields().Len())
			}
			byType := map[agentv2.FrameType]agentv2.FrameInfo{}
			byField := map[string]bool{}
			for i, info := range d.frames {
				if i > 0 && d.frames[i-1].Type >= info.Type {
					t.Errorf("table not strictly ascending at 0x%02x", uint8(info.Type))
				}
				if info.Type == 0 {
					t.Errorf("%s: frame type 0", info.Field)
				}
				byType[info.Type] = info
				if byField[info.Field] {
					t.Errorf("case %s listed twice", info.Field)
				}
				byField[info.Field] = true
				fd := oneof.Fields().ByName(protoreflect.Name(info.Field))
				if fd == nil {
					t.Errorf("table names %s, not a case of %s", info.Field, oneof.FullName())
				}
				if got := d.frameName(info.Type); got != info.Field {
					t.Errorf("FrameName(0x%02x) = %q, want %q", uint8(info.Type), got, info.Field)
				}
			}
			for i := 0; i < 256; i++ {
				ft := agentv2.FrameType(i)
				_, inTable := byType[ft]
				if d.known(ft) != inTable {
					t.Errorf("Is%sFrame(0x%02x) = %v, table has it: %v", d.name, i, d.known(ft), inTable)
				}
				if !inTable && d.frameName(ft) != "" {
					t.Errorf("FrameName(0x%02x) = %q for an unknown type", i, d.frameName(ft))
				}
			}
		})
	}
}

// TestRoundTrip encodes every frame type of both directions with populated
// messages and reads each back with every read mode, safe and unsafe.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, d := range directions {
		for i, info := range d.frames {
			t.Run(fmt.Sprintf("%s/%s", d.name, info.Field), func(t *testing.T) {
				t.Parallel()
				want := d.populated(t, info, uint64(1000+i), i)
				if got := want.FrameType(); got != info.Type {
					t.Fatalf("FrameType() = 0x%02x, want 0x%02x", uint8(got), uint8(info.Type))
				}
				frame := encode(t, nil, want)
				if n := binary.BigEndian.Uint32(frame); int(n) != len(frame)-4 {
					t.Fatalf("length field %d, frame has %d bytes after it", n, len(frame)-4)
				}
				if agentv2.FrameType(frame[4]) != info.Type {
					t.Fatalf("type byte 0x%02x, want 0x%02x", frame[4], uint8(info.Type))
				}
				var viaWriteFrameTo bytes.Buffer
				if err := WriteFrameTo(&viaWriteFrameTo, want, 0); err != nil {
					t.Fatal(err)
				}
				// Map order makes encodings differ byte for byte; compare
				// the header and the decoded message.
				if !bytes.Equal(viaWriteFrameTo.Bytes()[:5], frame[:5]) {
					t.Errorf("WriteFrameTo header % x, AppendFrame header % x", viaWriteFrameTo.Bytes()[:5], frame[:5])
				}
				viaWriter := d.new()
				if err := d.read(NewReader(&viaWriteFrameTo, 0), viaWriter, false); err != nil {
					t.Fatalf("read WriteFrameTo's frame: %v", err)
				}
				d.equal(t, viaWriter, want)
				for _, mode := range readModes {
					for _, unsafe := range []bool{false, true} {
						t.Run(fmt.Sprintf("%s/unsafe=%v", mode.name, unsafe), func(t *testing.T) {
							r := mode.reader(frame, 0)
							got := d.new()
							if err := d.read(r, got, unsafe); err != nil {
								t.Fatalf("read: %v", err)
							}
							d.equal(t, got, want)
							checkEOF(t, d.read(r, d.new(), unsafe))
						})
					}
				}
			})
		}
	}
}

// stream returns many frames back to back: every frame type of d, body
// chunks around the read buffer's size and far above it, repeated, plus the
// messages each should decode to.
func (d direction) stream(t testing.TB) ([]byte, []message) {
	var (
		buf  []byte
		msgs []message
		id   uint64
	)
	add := func(m message) {
		buf = encode(t, buf, m)
		msgs = append(msgs, m)
	}
	// Payload sizes whose frames end just before, at and after the buffered
	// reader's capacity, and far beyond it (TestLargeBodyChunk goes to MiBs).
	sizes := []int{0, 1, readBufferSize - 64, readBufferSize - 1, readBufferSize, readBufferSize + 1, 3 * readBufferSize, 300 << 10}
	for round := range 3 {
		for i, info := range d.frames {
			id++
			add(d.populated(t, info, id, round*100+i))
			if d.name == proxyToAgent.name && i < len(sizes) {
				id++
				// Aim the envelope's size at the target (its overhead is ~20 bytes).
				size := max(0, sizes[(i+round)%len(sizes)]-24)
				add(bodyChunk(id, size))
			}
		}
	}
	return buf, msgs
}

func TestBackToBack(t *testing.T) {
	t.Parallel()
	for _, d := range directions {
		buf, want := d.stream(t)
		for _, mode := range readModes {
			for _, unsafe := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/unsafe=%v", d.name, mode.name, unsafe), func(t *testing.T) {
					t.Parallel()
					r := mode.reader(buf, 0)
					got := d.new()
					for i, w := range want {
						if err := d.read(r, got, unsafe); err != nil {
							t.Fatalf("frame %d: %v", i, err)
						}
						d.equal(t, got, w)
					}
					checkEOF(t, d.read(r, got, unsafe))
				})
			}
		}
	}
}

// TestLargeBodyChunk reads a 1 MiB body chunk, far above the read buffer,
// then a small frame, then another large one.
func TestLargeBodyChunk(t *testing.T) {
	t.Parallel()
	big1, small, big2 := bodyChunk(1, 1<<20), bodyChunk(2, 10), bodyChunk(3, 2<<20)
	var buf []byte
	for _, m := range []*agentv2.ProxyToAgent{big1, small, big2} {
		buf = encode(t, buf, m)
	}
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			r := mode.reader(buf, 0)
			for _, want := range []*agentv2.ProxyToAgent{big1, small, big2} {
				var got agentv2.ProxyToAgent
				if err := r.ReadProxyToAgent(&got); err != nil {
					t.Fatal(err)
				}
				proxyToAgent.equal(t, &got, want)
			}
		})
	}
}

// TestSafeDecodeOutlivesNextRead: strings and bytes decoded by the safe
// readers are copies, from the buffered path and the large-frame path alike.
func TestSafeDecodeOutlivesNextRead(t *testing.T) {
	t.Parallel()
	for _, size := range []int{100, 2 * readBufferSize} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			t.Parallel()
			first, second := bodyChunk(1, size), bodyChunk(2, size)
			for i := range second.GetRequestBodyChunk().Data {
				second.GetRequestBodyChunk().Data[i] ^= 0xff
			}
			second.GetRequestBodyChunk().CorrelationId = "CORR-BODY"
			buf := encode(t, encode(t, nil, first), second)
			r := NewReader(bytes.NewReader(buf), 0)
			var got1, got2 agentv2.ProxyToAgent
			if err := r.ReadProxyToAgent(&got1); err != nil {
				t.Fatal(err)
			}
			if err := r.ReadProxyToAgent(&got2); err != nil {
				t.Fatal(err)
			}
			proxyToAgent.equal(t, &got1, first)
			proxyToAgent.equal(t, &got2, second)
		})
	}
}

// TestDecodeReplacesContents: a reused envelope holds only the last frame,
// never fields merged from an earlier one.
func TestDecodeReplacesContents(t *testing.T) {
	t.Parallel()
	first := &agentv2.ProxyToAgent{EventId: 7, Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Method:  "POST",
		Headers: []*agentv2.Header{{Name: "a", Value: "1"}, {Name: "b", Value: "2"}},
	}}}
	second := &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Uri:     "/x",
		Headers: []*agentv2.Header{{Name: "c", Value: "3"}},
	}}}
	buf := encode(t, encode(t, nil, first), second)
	for _, unsafe := range []bool{false, true} {
		r := NewReader(bytes.NewReader(buf), 0)
		m := &agentv2.ProxyToAgent{}
		if err := proxyToAgent.read(r, m, unsafe); err != nil {
			t.Fatal(err)
		}
		kept := m.GetRequestHeaders()
		if err := proxyToAgent.read(r, m, unsafe); err != nil {
			t.Fatal(err)
		}
		proxyToAgent.equal(t, m, second)
		if len(kept.Headers) != 2 || kept.Method != "POST" {
			t.Errorf("unsafe=%v: decoding the second frame changed the first one's event: %v", unsafe, kept)
		}
	}
}

// trackingReader serves b and then fails: reading past b is an error.
type trackingReader struct {
	t *testing.T
	b []byte
}

func (r *trackingReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		r.t.Errorf("reader read past the %d bytes it was given", len(p))
		return 0, errors.New("read past the end")
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// TestOversizeRejectedFromHeader: a header announcing 1 GiB against a 1 KiB
// limit fails at once, without reading on and without allocating.
// Not parallel: it measures the process's allocations.
func TestOversizeRejectedFromHeader(t *testing.T) {
	hdr := []byte{0x40, 0, 0, 0, byte(agentv2.ProxyToAgentFrameRequestBodyChunk)} // 1 GiB
	r := NewReader(&trackingReader{t: t, b: hdr}, 1024)
	var err error
	allocated := allocatedBytes(func() { err = r.ReadProxyToAgent(&agentv2.ProxyToAgent{}) })
	checkErr(t, err, ErrFrameTooLarge, agentwire.CodeResourceExhausted)
	if !IsFatal(err) {
		t.Errorf("IsFatal(%v) = false", err)
	}
	if !strings.Contains(err.Error(), "1073741824") {
		t.Errorf("error %q does not say how large the frame was", err)
	}
	if allocated > 64<<10 { // headroom for the runtime; the frame would be 1 GiB
		t.Errorf("rejecting the header allocated %d bytes", allocated)
	}
}

// TestAnnouncedSizeNotAllocated: a header within the limit but announcing
// far more than arrives costs memory for what arrived, not for what was
// announced. Not parallel: it measures the process's allocations.
func TestAnnouncedSizeNotAllocated(t *testing.T) {
	in := frameBytes(agentv2.ProxyToAgentFrameRequestBodyChunk, make([]byte, 200<<10))
	binary.BigEndian.PutUint32(in, 15<<20) // announce 15 MiB, send 200 KiB
	r := NewReader(bytes.NewReader(in), 0)
	var err error
	allocated := allocatedBytes(func() { _, _, err = r.ReadFrame() })
	checkErr(t, err, ErrTruncated, agentwire.CodeDataLoss)
	if allocated > 2<<20 {
		t.Errorf("a truncated 15 MiB frame with 200 KiB sent allocated %d bytes", allocated)
	}
}

func allocatedBytes(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestMaxFrameSizeBoundary(t *testing.T) {
	t.Parallel()
	const limit = 1000
	exact := frameBytes(agentv2.ProxyToAgentFrameRequestBodyChunk, make([]byte, limit-1))
	over := frameBytes(agentv2.ProxyToAgentFrameRequestBodyChunk, make([]byte, limit))
	if _, payload, err := NewReader(bytes.NewReader(exact), limit).ReadFrame(); err != nil || len(payload) != limit-1 {
		t.Errorf("frame of exactly the limit: %d bytes, %v", len(payload), err)
	}
	_, _, err := NewReader(bytes.NewReader(over), limit).ReadFrame()
	checkErr(t, err, ErrFrameTooLarge, agentwire.CodeResourceExhausted)
}

// TestHeaderJudgedWithoutTypeByte: a zero-length frame has no type byte,
// and an oversize one need not send it: the reader decides from the four
// length bytes, without waiting for a fifth that a hostile or broken peer
// never sends (it used to block until the connection ended).
func TestHeaderJudgedWithoutTypeByte(t *testing.T) {
	t.Parallel()
	for name, tt := range map[string]struct {
		hdr      []byte
		sentinel error
		code     agentwire.Code
	}{
		"zero length": {[]byte{0, 0, 0, 0}, ErrZeroLength, agentwire.CodeInternal},
		"oversize":    {[]byte{0x40, 0, 0, 0}, ErrFrameTooLarge, agentwire.CodeResourceExhausted},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pr, pw := io.Pipe()
			defer pr.Close()
			go func() { _, _ = pw.Write(tt.hdr) }() // and then nothing, without closing
			done := make(chan error, 1)
			go func() {
				_, _, err := NewReader(pr, 1024).ReadFrame()
				done <- err
			}()
			select {
			case err := <-done:
				checkErr(t, err, tt.sentinel, tt.code)
			case <-time.After(5 * time.Second):
				t.Fatal("ReadFrame waited for a type byte that never comes")
			}
		})
	}
}

// failingReader serves b, then returns err.
type failingReader struct {
	b   []byte
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, r.err
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func TestReadErrors(t *testing.T) {
	t.Parallel()
	valid := encode(t, nil, proxyToAgent.populated(t, agentv2.ProxyToAgentFrames[1], 1, 1))
	mismatched := bytes.Clone(valid)
	mismatched[4] = byte(agentv2.ProxyToAgentFrameResponseHeaders)
	big := encode(t, nil, bodyChunk(1, 300<<10))
	tests := []struct {
		name     string
		in       []byte
		max      int
		sentinel error
		code     agentwire.Code
		check    func(t *testing.T, err error)
	}{
		{name: "zero length", in: append([]byte{0, 0, 0, 0}, valid...), sentinel: ErrZeroLength, code: agentwire.CodeInternal},
		{name: "over the limit", in: frameBytes(0x10, make([]byte, 2048)), max: 1024, sentinel: ErrFrameTooLarge, code: agentwire.CodeResourceExhausted},
		{name: "over the default limit", in: []byte{0x01, 0, 0, 1, 0x10}, sentinel: ErrFrameTooLarge, code: agentwire.CodeResourceExhausted},
		{name: "max uint32 length", in: []byte{0xff, 0xff, 0xff, 0xff, 0x10}, sentinel: ErrFrameTooLarge, code: agentwire.CodeResourceExhausted},
		{name: "truncated header", in: valid[:3], sentinel: ErrTruncated, code: agentwire.CodeDataLoss},
		{name: "header without type", in: valid[:4], sentinel: ErrTruncated, code: agentwire.CodeDataLoss},
		{name: "header only", in: valid[:5], sentinel: ErrTruncated, code: agentwire.CodeDataLoss},
		{name: "truncated payload", in: valid[:len(valid)-1], sentinel: ErrTruncated, code: agentwire.CodeDataLoss},
		{name: "truncated large payload", in: big[:len(big)-100<<10], sentinel: ErrTruncated, code: agentwire.CodeDataLoss},
		{name: "truncated second frame", in: append(bytes.Clone(valid), valid[:10]...), sentinel: ErrTruncated, code: agentwire.CodeDataLoss},
		{
			name: "payload does not parse", in: frameBytes(agentv2.ProxyToAgentFrameRequestHeaders, []byte{0x12, 0xff, 0xff, 0xff, 0x0f}),
			sentinel: ErrMalformed, code: agentwire.CodeInternal,
		},
		{
			name: "payload with bad tag", in: frameBytes(agentv2.ProxyToAgentFrameRequestHeaders, []byte{0x07}),
			sentinel: ErrMalformed, code: agentwire.CodeInternal,
		},
		{
			name: "type byte does not match payload", in: mismatched, sentinel: ErrMalformed, code: agentwire.CodeInternal,
			check: func(t *testing.T, err error) {
				var mm *agentv2.FrameMismatchError
				if !errors.As(err, &mm) {
					t.Fatalf("%v is not a *FrameMismatchError", err)
				}
				if mm.Type != agentv2.ProxyToAgentFrameResponseHeaders || mm.Payload != agentv2.ProxyToAgentFrameRequestHeaders {
					t.Errorf("mismatch error names 0x%02x/0x%02x", uint8(mm.Type), uint8(mm.Payload))
				}
			},
		},
		{
			name: "known type with empty payload", in: frameBytes(agentv2.ProxyToAgentFramePing, nil),
			sentinel: ErrMalformed, code: agentwire.CodeInternal,
		},
		{
			name: "event_id only", in: frameBytes(agentv2.ProxyToAgentFramePing, []byte{0xa0, 0x06, 0x01}),
			sentinel: ErrMalformed, code: agentwire.CodeInternal,
		},
	}
	for _, tt := range tests {
		for _, mode := range readModes {
			t.Run(tt.name+"/"+mode.name, func(t *testing.T) {
				t.Parallel()
				r := mode.reader(tt.in, tt.max)
				var err error
				for range 3 { // the valid frames before the bad one, if any
					if err = r.ReadProxyToAgent(&agentv2.ProxyToAgent{}); err != nil {
						break
					}
				}
				checkErr(t, err, tt.sentinel, tt.code)
				if !IsFatal(err) {
					t.Errorf("IsFatal(%v) = false", err)
				}
				if tt.check != nil {
					tt.check(t, err)
				}
			})
		}
	}
}

// TestReadTransportError: an I/O error other than EOF is reported as such
// (CodeUnavailable) and stays reachable for errors.Is.
func TestReadTransportError(t *testing.T) {
	t.Parallel()
	boom := errors.New("connection reset")
	valid := encode(t, nil, bodyChunk(1, 100))
	bigValid := encode(t, nil, bodyChunk(1, 200<<10))
	for name, in := range map[string][]byte{
		"before a frame":     nil,
		"in the header":      valid[:2],
		"in the payload":     valid[:20],
		"in a large payload": bigValid[:100<<10],
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := NewReader(&failingReader{b: in, err: boom}, 0)
			_, _, err := r.ReadFrame()
			checkErr(t, err, boom, agentwire.CodeUnavailable)
			if !IsFatal(err) {
				t.Errorf("IsFatal(%v) = false", err)
			}
		})
	}
}

// TestUnknownFrameTypeSkipped: frames of unknown types (including the other
// direction's types) are reported, leave the envelope untouched and the
// stream usable.
func TestUnknownFrameTypeSkipped(t *testing.T) {
	t.Parallel()
	want1 := proxyToAgent.populated(t, agentv2.ProxyToAgentFrames[2], 1, 1)
	want2 := proxyToAgent.populated(t, agentv2.ProxyToAgentFrames[3], 2, 2)
	var in []byte
	in = append(in, frameBytes(0x7f, []byte("from a newer peer"))...)
	in = encode(t, in, want1)
	in = append(in, frameBytes(0xfe, bytes.Repeat([]byte{0xff}, 200<<10))...) // larger than the read buffer
	in = append(in, frameBytes(0x00, nil)...)
	in = encode(t, in, &agentv2.AgentToProxy{Message: &agentv2.AgentToProxy_Response{Response: &agentv2.AgentResponse{CorrelationId: "x"}}})
	in = encode(t, in, want2)
	steps := []message{nil, want1, nil, nil, nil, want2}
	for _, mode := range readModes {
		for _, unsafe := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/unsafe=%v", mode.name, unsafe), func(t *testing.T) {
				t.Parallel()
				r := mode.reader(in, 0)
				m := proxyToAgent.new()
				var last message
				for i, want := range steps {
					err := proxyToAgent.read(r, m, unsafe)
					if want == nil {
						checkErr(t, err, ErrUnknownFrameType, agentwire.CodeUnimplemented)
						if IsFatal(err) {
							t.Errorf("step %d: IsFatal(%v) = true", i, err)
						}
						switch {
						case last == nil:
						case unsafe:
							// m aliases the reader's buffer, which the skipped
							// frame reused; only its scalars are still m's own.
							if m.FrameType() != last.FrameType() || m.GetEventId() != last.GetEventId() {
								t.Errorf("step %d: skipping a frame changed the envelope", i)
							}
						default:
							proxyToAgent.equal(t, m, last) // untouched
						}
						continue
					}
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					proxyToAgent.equal(t, m, want)
					last = want
				}
				checkEOF(t, proxyToAgent.read(r, m, unsafe))
			})
		}
	}
}

func TestIsFatal(t *testing.T) {
	t.Parallel()
	if IsFatal(nil) {
		t.Error("IsFatal(nil)")
	}
	if IsFatal(wrap(agentwire.CodeUnimplemented, ErrUnknownFrameType, errors.New("x"))) {
		t.Error("unknown frame type is fatal")
	}
	for _, s := range []error{ErrZeroLength, ErrFrameTooLarge, ErrTruncated, ErrMalformed, io.EOF} {
		if !IsFatal(agentwire.NewError(agentwire.CodeInternal, s)) {
			t.Errorf("%v not fatal", s)
		}
	}
}

func TestAppendFrame(t *testing.T) {
	t.Parallel()
	m := bodyChunk(9, 100)
	size := m.SizeVT() + 1

	prefix := []byte("prefix")
	out, err := AppendFrame(bytes.Clone(prefix), m, size)
	if err != nil {
		t.Fatalf("frame of exactly max: %v", err)
	}
	if !bytes.HasPrefix(out, prefix) || len(out) != len(prefix)+4+size {
		t.Errorf("AppendFrame did not append one frame to dst")
	}

	dst := bytes.Clone(prefix)
	out, err = AppendFrame(dst, m, size-1)
	checkErr(t, err, ErrFrameTooLarge, agentwire.CodeResourceExhausted)
	var sizeErr *agentv2.FrameSizeError
	if !errors.As(err, &sizeErr) || sizeErr.Size != size || sizeErr.Max != size-1 {
		t.Errorf("error %v does not carry size %d and max %d", err, size, size-1)
	}
	if !bytes.Equal(out, prefix) {
		t.Errorf("failed AppendFrame changed dst to %q", out)
	}

	_, err = AppendFrame(nil, &agentv2.ProxyToAgent{EventId: 1}, 0)
	var aerr *agentwire.Error
	if !errors.As(err, &aerr) || aerr.Code() != agentwire.CodeInvalidArgument {
		t.Errorf("envelope without a case: %v, want an invalid_argument *agentwire.Error", err)
	}

	// max <= 0 means the default limit.
	_, err = AppendFrame(nil, bodyChunk(1, DefaultMaxFrameSize), 0)
	checkErr(t, err, ErrFrameTooLarge, agentwire.CodeResourceExhausted)
}

func TestWriteFrameTo(t *testing.T) {
	t.Parallel()
	boom := errors.New("broken pipe")
	err := WriteFrameTo(&failingWriter{err: boom}, bodyChunk(1, 10), 0)
	checkErr(t, err, boom, agentwire.CodeUnavailable)

	var buf bytes.Buffer
	err = WriteFrameTo(&buf, bodyChunk(1, 100), 50)
	checkErr(t, err, ErrFrameTooLarge, agentwire.CodeResourceExhausted)
	if buf.Len() != 0 {
		t.Errorf("oversize WriteFrameTo wrote %d bytes", buf.Len())
	}
}

type failingWriter struct{ err error }

func (w *failingWriter) Write([]byte) (int, error) { return 0, w.err }

// TestRenewKeepsLentPayloads: payloads decoded without copies stay intact
// after Renew however much is read next, the bytes the Reader held unread
// are read after a Renew (and after two in a row), and frames larger than
// the buffer are not overwritten either.
func TestRenewKeepsLentPayloads(t *testing.T) {
	t.Parallel()
	var frames []*agentv2.ProxyToAgent
	for i := range 200 {
		size := 50 + i*37%400
		if i%50 == 7 {
			size = 2 * readBufferSize
		}
		frames = append(frames, bodyChunk(uint64(i+1), size))
	}
	var buf []byte
	for _, m := range frames {
		buf = encode(t, buf, m)
	}
	for _, mode := range readModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			r := mode.reader(buf, 0)
			lent := make([]*agentv2.ProxyToAgent, len(frames))
			for i := range frames {
				lent[i] = new(agentv2.ProxyToAgent)
				if err := r.ReadProxyToAgentUnsafe(lent[i]); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				// Every third frame is kept past the next reads: the
				// reader renews its buffers, twice now and then.
				if i%3 == 0 {
					r.Renew()
					if i%9 == 0 {
						r.Renew()
					}
				}
			}
			for i := range frames {
				if i%3 == 0 {
					proxyToAgent.equal(t, lent[i], frames[i])
				}
			}
			checkEOF(t, r.ReadProxyToAgent(new(agentv2.ProxyToAgent)))
		})
	}
}
