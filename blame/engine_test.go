package blame

import (
	"context"
	"sync"
	"testing"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/report"
)

// TestWithTheEngine runs the engine on a repository: a report of a panic in
// the repository's code is blamed at the report's revision on the author of
// the line, through .mailmap, and that developer is notified.
func TestWithTheEngine(t *testing.T) {
	m := newMemRepo(t)
	m.commit("ann@laptop.local", map[string]string{
		".mailmap":         "Ann <ann@example.com> <ann@laptop.local>\n",
		"cart/cart.go":     "package cart\n\nfunc Add(items []int, i int) int {\n\treturn items[i]\n}\n",
		"cmd/shop/main.go": "package main\n\nfunc main() {\n\tcart.Add(nil, 3)\n}\n",
	})
	rev := m.commit("bob@example.com", map[string]string{"cmd/shop/main.go": "package main\n\nfunc main() {\n\tcart.Add(nil, 4)\n}\n"})
	g, err := New(m.repo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var notices []*flawless.Notice
	e := flawless.New(flawless.Config{Source: g, Blamer: g, Threshold: 1,
		Notifier: flawless.NotifierFunc(func(_ context.Context, n *flawless.Notice) error {
			mu.Lock()
			notices = append(notices, n)
			mu.Unlock()
			return nil
		})})
	r := &report.Report{
		Hostname: "web-1", Type: "runtime.boundsError", Message: "index out of range [3] with length 0",
		Build: report.Build{Path: "github.com/acme/shop", Revision: rev.String()},
		Frames: []report.Frame{
			{Function: "github.com/acme/shop/cart.Add", File: "/home/ci/shop/cart/cart.go", Line: 4},
			{Function: "main.main", File: "/home/ci/shop/cmd/shop/main.go", Line: 4},
			{Function: "runtime.main", File: "/usr/local/go/src/runtime/proc.go", Line: 283},
		},
	}
	if err := e.Report(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(notices) != 1 {
		t.Fatalf("%d notices, want 1", len(notices))
	}
	n := notices[0]
	if n.To[0] != "ann@example.com" || n.Entry.Key.Path != "cart/cart.go" || n.Entry.Key.Text != "return items[i]" {
		t.Errorf("notice to %v about %+v", n.To, n.Entry.Key)
	}
	if n.Entry.Author.Name != "Ann" || n.Entry.Classification.Revision != rev.String() || n.Entry.Classification.Fallback {
		t.Errorf("author %+v, revision %s (fallback %v)", n.Entry.Author, n.Entry.Classification.Revision, n.Entry.Classification.Fallback)
	}
}
