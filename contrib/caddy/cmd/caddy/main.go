// Command caddy is Caddy's standard distribution with the agentwire
// handler module (the agentwire Caddyfile directive) built in.
//
//	go -C contrib/caddy run ./cmd/caddy run --config /path/to/Caddyfile
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/agentwire/agentwire/contrib/caddy"
)

func main() {
	caddycmd.Main()
}
