package caddyagentwire

import (
	"errors"
	"sync"

	"github.com/caddyserver/caddy/v2"
)

func init() {
	caddy.RegisterModule(new(App))
}

// App is the agentwire app, which Caddy loads for the handlers that need
// it (it has no config): it starts their reverse listeners when Caddy
// starts the config, so that a config only provisioned (caddy validate)
// never binds, or unlinks, a socket in use.
type App struct {
	mu    sync.Mutex // guards pools
	pools []*sharedPool
}

var _ caddy.App = (*App)(nil)

// CaddyModule returns the module's information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "agentwire", New: func() caddy.Module { return new(App) }}
}

// add has Start start sp's reverse listener.
func (a *App) add(sp *sharedPool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pools = append(a.pools, sp)
}

// Start starts the reverse listeners of the config's pools that have none
// yet (a pool kept from the previous config has its own).
func (a *App) Start() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for _, sp := range a.pools {
		errs = append(errs, sp.startListener())
	}
	return errors.Join(errs...)
}

// Stop does nothing: a pool, and its listener, close when the last config
// that uses it is cleaned up.
func (a *App) Stop() error { return nil }
