package flawless_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/client"
	"github.com/flawless-go/flawless/rules"
)

// In-process use: an engine with rules, a blamer and a notifier; a panic
// recovered by client.Recover is blamed on the line that panicked and the
// developer is told once, though the line fails three times.
func Example() {
	rs, err := rules.Load(os.DirFS("testdata/rules"), rules.Options{EmailDomain: "example.com"})
	if err != nil {
		fmt.Println(err)
		return
	}
	e := flawless.New(flawless.Config{
		Policy: rs,
		// blame.Open gives a Blamer over the team's git repository; this
		// one says Ann's laptop address changed every line.
		Blamer: flawless.BlamerFunc(func(context.Context, flawless.Location, int) (flawless.Author, error) {
			return flawless.Author{Name: "Ann", Email: "ann@ann-laptop.local", Time: time.Now()}, nil
		}),
		// notify.NewMailer gives a Notifier that sends email.
		Notifier: flawless.NotifierFunc(func(_ context.Context, n *flawless.Notice) error {
			fmt.Printf("to %v: %s panicked: %s (%d times)\n", n.To, n.Entry.Key.Path, n.Entry.Last.Message, n.Entry.Count)
			return nil
		}),
		Threshold: 3,
	})
	defer e.Close(context.Background())

	ctx := context.Background()
	prices, sku := []int{10, 20}, 2
	for range 4 {
		func() {
			defer client.Recover(ctx, e, client.Swallow())
			fmt.Println("price:", prices[sku]) // panics: index out of range
		}()
		e.Flush(ctx) // wait for blame and email, for the example's sake
	}
	fmt.Println("counted:", e.Stats().Counted)
	// Output:
	// to [ann@example.com]: example_test.go panicked: runtime error: index out of range [2] with length 2 (3 times)
	// counted: 4
}
