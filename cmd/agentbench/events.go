package main

import (
	"fmt"
	"strconv"

	agentv2 "github.com/agentwire/agentwire/gen/sentinel/agent/v2"
)

// Payloads of a scenario.
const (
	payloadHeaders = "headers" // a request-headers event: ~300 bytes, 20 headers
	payloadBody    = "body16k" // a 16 KiB request-body chunk
)

// bodyChunkSize is the data size of a body-chunk event.
const bodyChunkSize = 16 << 10

// headersEvent is a request-headers event as a proxy sends it for a small
// API request: 20 common headers with short values, about 300 bytes of
// names and values, about 500 bytes as a frame (the baselines send requests
// of the same size). The example WAF allows it with one header mutation.
func headersEvent(worker int) *agentv2.ProxyToAgent {
	cid := fmt.Sprintf("c%06d", worker)
	names := []string{
		"host", "user-agent", "accept", "accept-encoding", "accept-language",
		"content-type", "content-length", "connection", "cache-control", "origin",
		"referer", "cookie", "x-request-id", "x-forwarded-for", "x-real-ip",
		"dnt", "pragma", "te", "via", "date",
	}
	values := []string{
		"a.io", "curl/8", "*/*", "gzip", "en",
		"text/json", "0", "close", "no-cache", "https://a.io",
		"https://a.io/", "s=1", strconv.Itoa(worker), "10.0.0.1", "10.0.0.1",
		"1", "no-cache", "trailers", "1.1 lb", "Thu, 27 Nov 2026",
	}
	hs := make([]*agentv2.Header, len(names))
	for i := range names {
		hs[i] = &agentv2.Header{Name: names[i], Value: values[i]}
	}
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestHeaders{RequestHeaders: &agentv2.RequestHeadersEvent{
		Metadata: &agentv2.RequestMetadata{
			CorrelationId: cid,
			ClientIp:      "10.0.0.1",
			ClientPort:    51234,
			Protocol:      "HTTP/1.1",
			TimestampMs:   1764000000000,
		},
		Method:      "GET",
		Uri:         "/api/items?id=42",
		HttpVersion: "HTTP/1.1",
		Headers:     hs,
	}}}
}

// bodyEvent is a 16 KiB request-body chunk the example WAF allows.
func bodyEvent(worker int) *agentv2.ProxyToAgent {
	data := make([]byte, bodyChunkSize)
	for i := range data {
		data[i] = 'a' + byte(i%26)
	}
	return &agentv2.ProxyToAgent{Message: &agentv2.ProxyToAgent_RequestBodyChunk{RequestBodyChunk: &agentv2.BodyChunkEvent{
		CorrelationId:        fmt.Sprintf("c%06d", worker),
		ChunkIndex:           1,
		Data:                 data,
		BytesTransferred:     bodyChunkSize,
		ProxyBufferAvailable: 1 << 20,
		TimestampMs:          1764000000000,
	}}}
}

func newEvent(payload string, worker int) *agentv2.ProxyToAgent {
	if payload == payloadBody {
		return bodyEvent(worker)
	}
	return headersEvent(worker)
}

// frameSize is the size of ev as a frame on a Unix socket, with a
// typical event id; the baselines send requests of the same size.
func frameSize(ev *agentv2.ProxyToAgent) int {
	c := ev.CloneVT()
	c.EventId = 1 << 20
	return agentv2.FrameHeaderSize + c.SizeVT()
}
