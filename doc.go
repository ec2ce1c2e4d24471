// Package agentwire holds what every side of the Sentinel agent protocol v2
// shares: the [Error] type and its [Code]s.
//
// A proxy consults external agents (WAF, auth, rate limiting, bot detection)
// about every HTTP exchange. The proxy side imports [github.com/agentwire/agentwire/pool]
// over [github.com/agentwire/agentwire/transport]; the agent side imports
// [github.com/agentwire/agentwire/agent]. The wire schema lives in
// proto/sentinel/agent/v2 and its generated code in gen/.
package agentwire
