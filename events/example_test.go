package events_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/agentwire/agentwire/events"
)

func ExampleRequestHeaders() {
	r := httptest.NewRequest(http.MethodGet, "/search?q=go", nil)
	r.RemoteAddr = "192.0.2.1:4000"
	ev := events.RequestHeaders(r, "req-1", events.WithClock(func() time.Time { return time.Unix(0, 0) }))
	h := ev.GetRequestHeaders()
	fmt.Println(ev.EventType(), h.GetMethod(), h.GetUri())
	fmt.Println(h.GetMetadata().GetClientIp(), h.GetMetadata().GetServerName())
	// Output:
	// EVENT_TYPE_REQUEST_HEADERS GET /search?q=go
	// 192.0.2.1 example.com
}
