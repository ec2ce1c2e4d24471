package reftest

import (
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// TestGoldenDecode reads every event and response golden frame back into
// the sample it was built from.
func TestGoldenDecode(t *testing.T) {
	t.Parallel()
	for _, ev := range SampleEvents {
		name := eventNames[ev.Type()]
		for _, file := range []string{name + ".json", name + ".msgpack", name + "_udsrs.msgpack"} {
			frame, err := LoadGolden(filepath.Join("testdata", file+".hex"))
			if err != nil {
				continue // no _udsrs variant for this kind
			}
			enc := MsgPack
			if file == name+".json" {
				enc = JSON
			}
			got, err := DecodeEvent(enc, frame[4], frame[5:])
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			assertEvent(t, file, got, ev)
		}
	}
	for name, want := range SampleResponses {
		want = want.WithCorrelation(SampleCorrelation)
		for _, enc := range []Encoding{JSON, MsgPack} {
			frame, err := LoadGolden(filepath.Join("testdata", name+"."+string(enc)+".hex"))
			if err != nil {
				t.Fatal(err)
			}
			got, id, err := DecodeResponse(enc, frame[5:])
			if err != nil || id != SampleCorrelation {
				t.Fatalf("%s.%s: id %q, %v", name, enc, id, err)
			}
			assertResponse(t, name+"."+string(enc), got, want)
		}
	}
}

// assertEvent compares events, the configure event's config by its JSON.
func assertEvent(t *testing.T, what string, got, want Event) {
	t.Helper()
	if g, ok := got.(Configure); ok {
		w := want.(Configure)
		gj, _ := Marshal(JSON, g.Config, true)
		wj, _ := Marshal(JSON, w.Config, true)
		if string(gj) != string(wj) || *g.ConfigVersion != *w.ConfigVersion || g.CorrelationID != w.CorrelationID {
			t.Errorf("%s: got %s %+v, want %s %+v", what, gj, g, wj, w)
		}
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func assertResponse(t *testing.T, what string, got, want Response) {
	t.Helper()
	gj, _ := Marshal(JSON, got.Value(), false)
	wj, _ := Marshal(JSON, want.Value(), false)
	if string(gj) != string(wj) {
		t.Errorf("%s:\n got %s\nwant %s", what, gj, wj)
	}
}

// startAgent serves a on a fresh socket until the test ends.
func startAgent(t *testing.T, a *Agent) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ln) }()
	t.Cleanup(func() {
		ln.Close()
		a.CloseConns()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return path
}

func dial(t *testing.T, path string, encs ...Encoding) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl, err := Dial(ctx, path, encs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// echoAgent answers each event with the sample response that names its kind.
func echoAgent() *Agent {
	return &Agent{Caps: SampleCapabilities, Handle: func(ev Event) Response {
		r := SampleResponses["response_block"]
		r.Audit.Tags = []string{eventNames[ev.Type()]}
		return r
	}}
}

func TestClientAgentEveryEvent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		offer []Encoding
		agent []Encoding
		want  Encoding
		dup   bool
	}{
		{"msgpack", []Encoding{MsgPack, JSON}, nil, MsgPack, false},
		{"msgpack-udsrs", []Encoding{MsgPack, JSON}, nil, MsgPack, true},
		{"json-agent", []Encoding{MsgPack, JSON}, []Encoding{JSON}, JSON, false},
		{"legacy", nil, nil, JSON, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := echoAgent()
			a.Encodings = tc.agent
			cl := dial(t, startAgent(t, a), tc.offer...)
			cl.DupKeys = tc.dup
			if cl.Enc != tc.want {
				t.Fatalf("negotiated %q, want %q", cl.Enc, tc.want)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for _, ev := range SampleEvents {
				r, err := cl.Send(ctx, ev)
				if err != nil {
					t.Fatalf("%s: %v", eventNames[ev.Type()], err)
				}
				if r.Decision.Kind != "block" || r.Audit.Tags[0] != eventNames[ev.Type()] {
					t.Errorf("%s: got %+v", eventNames[ev.Type()], r)
				}
			}
			for i, rec := range a.Received() {
				if rec.Err != nil {
					t.Fatalf("frame %d: %v", i, rec.Err)
				}
				assertEvent(t, eventNames[rec.Type], rec.Event, SampleEvents[i])
			}
		})
	}
}

func TestAgentFaults(t *testing.T) {
	t.Parallel()
	faults := map[string]Fault{"lie": {WrongID: "someone-else"}, "twice": {Twice: true},
		"garbage": {Garbage: true}, "stall": {Stall: true}, "late": {Delay: 50 * time.Millisecond},
		"omit": {Omit: true}}
	a := &Agent{Caps: SampleCapabilities, Faults: func(ev Event) Fault { return faults[ev.Correlation()] }}
	cl := dial(t, startAgent(t, a), MsgPack, JSON)
	send := func(id string, wait time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_, err := cl.Send(ctx, ResponseHeaders{CorrelationID: id, Status: 200})
		return err
	}
	for id, ok := range map[string]bool{"lie": false, "stall": false, "omit": false,
		"twice": true, "garbage": true, "late": true} {
		if err := send(id, 300*time.Millisecond); (err == nil) != ok {
			t.Errorf("%s: err %v", id, err)
		}
	}
	// lie, twice's second copy, garbage's junk and omit went nowhere.
	deadline := time.Now().Add(2 * time.Second)
	for len(cl.Dropped()) < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(cl.Dropped()); n != 4 {
		t.Errorf("dropped %d responses, want 4", n)
	}
}

func TestPingAndControl(t *testing.T) {
	t.Parallel()
	a := echoAgent()
	cl := dial(t, startAgent(t, a), MsgPack, JSON)
	if err := cl.Ping(7, SampleTS); err != nil {
		t.Fatal(err)
	}
	pong := <-cl.Control()
	want, _ := Marshal(JSON, Ping(7, SampleTS), true)
	if pong.Type != TypePong || string(pong.Payload) != string(want) {
		t.Fatalf("pong %x %s", pong.Type, pong.Payload)
	}
	for a.Conns() == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := a.Broadcast(TypeHealthStatus, Health("waf-1", 4, nil, SampleTS)); err != nil {
		t.Fatal(err)
	}
	h := <-cl.Control()
	v, err := Unmarshal(cl.Enc, h.Payload)
	if err != nil || h.Type != TypeHealthStatus {
		t.Fatalf("health %x: %v", h.Type, err)
	}
	if s, _ := Uint(v.(map[string]any)["state"]); s != 4 {
		t.Errorf("state %v", v)
	}
	if err := cl.Cancel("x", 1, SampleTS); err != nil {
		t.Fatal(err)
	}
}

func TestReverseRegistration(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "reverse.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a := echoAgent()
	done := make(chan error, 1)
	go func() { done <- a.DialReverse(ctx, path, nil) }()
	cl, reg, err := AcceptReverse(ctx, ln, "conn-1")
	if err != nil {
		t.Fatal(err)
	}
	var caps struct {
		SupportedEvents []int `json:"supported_events"`
	}
	if err := json.Unmarshal(reg.Capabilities, &caps); err != nil || reg.AgentID != "waf-1" || len(caps.SupportedEvents) != 8 {
		t.Fatalf("registration %+v: %v", reg, err)
	}
	r, err := cl.Send(ctx, SampleEvents[0])
	if err != nil || r.Decision.Kind != "block" || cl.Enc != JSON {
		t.Fatalf("%+v %v", r, err)
	}
	cl.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
