package reftest

import (
	"net"
	"testing"
)

// ServeUnix serves a on a Unix socket at path until the test ends: tb's
// cleanup closes the listener and the connections and waits for Serve.
func (a *Agent) ServeUnix(tb testing.TB, path string) {
	tb.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.Serve(ln)
	}()
	tb.Cleanup(func() {
		ln.Close()
		a.CloseConns()
		<-done
	})
}
