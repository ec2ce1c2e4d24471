package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentwire/agentwire/shadow"
)

func TestShadow(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(shadow.Report{Primary: "waf", Shadow: "waf-next",
			Counts: map[shadow.Result]uint64{shadow.Agree: 7, shadow.AllowVsBlock: 1},
			Disagreements: []shadow.Disagreement{{Time: time.Unix(0, 0), Result: shadow.AllowVsBlock, CorrelationID: "r9",
				Event: "EVENT_TYPE_REQUEST_HEADERS", PrimaryDecision: "allow", ShadowDecision: "block 403"}}})
	}))
	defer srv.Close()
	code, out, errOut := runBinary(t, "shadow", srv.URL)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "primary waf, shadow waf-next")
	assert.Regexp(t, `(?m)^agree\s+7$`, out)
	assert.Regexp(t, `(?m)allow_vs_block\s+r9\s+EVENT_TYPE_REQUEST_HEADERS\s+allow \| block 403$`, out)

	code, _, errOut = runBinary(t, "shadow", srv.URL+"/x", "-timeout", "1s")
	assert.Equal(t, 0, code, errOut) // the test server serves the report on every path
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	code, _, errOut = runBinary(t, "shadow", notFound.URL)
	assert.Equal(t, exitIncompatible, code)
	assert.Contains(t, errOut, "404")
}
