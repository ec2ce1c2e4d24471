package failover_test

import (
	"fmt"
	"log"

	"github.com/agentwire/agentwire/failover"
	"github.com/agentwire/agentwire/pool"
)

func ExampleNew() {
	fo, err := failover.New(failover.WithFallback("waf", "waf-backup"), failover.WithRequestBuffer(256<<10))
	if err != nil {
		log.Fatal(err)
	}
	hg, err := failover.NewHedger(failover.WithHedgedAgents("waf"), failover.WithHedgeBudget(0.02, 5))
	if err != nil {
		log.Fatal(err)
	}
	// Failover outside hedging: it sees the winner of hedged headers.
	p, err := pool.New(pool.WithInterceptors(fo, hg))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	// p.AddAgent(ctx, "waf", ...) and p.AddAgent(ctx, "waf-backup", ...), then p.Send as usual.
	fmt.Println(fo.Stats()[failover.Attempted], hg.Delay("waf"))
	// Output: 0 50ms
}
