package caddyagentwire_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks for leaked goroutines, less the one Caddy leaves behind
// on purpose: certmagic refreshes a storage lock file (Caddy's storage
// cleaning takes one at start) every 5 s until it sees it gone.
func TestMain(m *testing.M) {
	// Caddy must not read or write the user's config or data directories.
	dir, err := os.MkdirTemp("", "aw-caddy-home")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CONFIG_HOME", dir)
	os.Setenv("XDG_DATA_HOME", dir)
	os.Setenv("HOME", dir)
	opts := append(caddyGlobals, goleak.Cleanup(func(code int) {
		os.RemoveAll(dir)
		os.Exit(code)
	}))
	goleak.VerifyTestMain(m, opts...)
}

var caddyGlobals = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/caddyserver/certmagic.keepLockfileFresh"),
}
