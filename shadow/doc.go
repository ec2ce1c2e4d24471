// Package shadow mirrors a sample of the requests one agent sees to a
// second agent and compares their verdicts, to roll out a new agent or
// rule set safely: the shadow's answers are never applied.
//
//	ic, err := shadow.New("waf", "waf-next", shadow.WithSampleRate(0.1))
//	p, err := pool.New(pool.WithInterceptors(ic))
//
// For a sampled request (sampled by correlation id, so a request is
// mirrored whole or not at all), each event the primary agent answers is
// sent to the shadow right after, in order, with pool.Go: queued without
// waiting for room or for the shadow's answer, which is compared when it
// comes, on the shadow connection's reader. The transport holds such
// events for a couple of milliseconds (transport.WithAsyncWindow), so
// that the shadow reads them in batches. The caller never waits for the
// shadow, and the shadow's failures never reach it. Past a bound on the
// events waiting for the shadow ([WithMaxInFlight]), or where the pool
// would have to wait (a full connection, a paused one, a full write
// queue), events are dropped and counted. Each pair of answers is
// compared:
//
//	agree                both allowed with the same mutations, or both stopped the request alike
//	allow_vs_block       the primary allowed, the shadow blocked, redirected or challenged
//	block_vs_allow       the primary blocked, redirected or challenged, the shadow allowed
//	different_block      both stopped the request, differently (kind or status)
//	different_mutations  both allowed, with different header mutations
//	primary_error        the primary failed, or the pool failed open for it (nothing to compare)
//	shadow_error         the shadow failed or timed out
//
// Counts go to OpenTelemetry (agentwire.shadow.comparisons, by agent pair
// and result) and [Interceptor.Stats]; the latest disagreements are kept
// in a bounded log ([Interceptor.Disagreements]), which [Interceptor.Handler]
// serves as JSON for `agentctl shadow`. [Interceptor.Promote] swaps the two
// agents at run time.
package shadow
