package blame

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/report"
	"github.com/go-git/go-billy/v5/memfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
)

var (
	_ flawless.Source = (*Git)(nil)
	_ flawless.Blamer = (*Git)(nil)
)

// memRepo builds a repository in memory with go-git.
type memRepo struct {
	t    *testing.T
	repo *git.Repository
	wt   *git.Worktree
	when time.Time
}

func newMemRepo(t *testing.T) *memRepo {
	repo, err := git.Init(memory.NewStorage(), memfs.New())
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	return &memRepo{t: t, repo: repo, wt: wt, when: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (m *memRepo) commit(author string, files map[string]string) plumbing.Hash {
	m.t.Helper()
	for name, content := range files {
		f, err := m.wt.Filesystem.Create(name)
		if err != nil {
			m.t.Fatal(err)
		}
		f.Write([]byte(content))
		f.Close()
		if _, err := m.wt.Add(name); err != nil {
			m.t.Fatal(err)
		}
	}
	m.when = m.when.Add(time.Hour)
	h, err := m.wt.Commit("change", &git.CommitOptions{Author: &object.Signature{Name: strings.Split(author, "@")[0], Email: author, When: m.when}})
	if err != nil {
		m.t.Fatal(err)
	}
	return h
}

func TestInMemoryRepository(t *testing.T) {
	m := newMemRepo(t)
	first := m.commit("ann@example.com", map[string]string{"svc/handler.go": "package svc\n\nfunc H() {\n\tpanic(\"x\")\n}\n"})
	second := m.commit("bob@example.com", map[string]string{"svc/handler.go": "package svc\n\nfunc H() {\n\tpanic(\"changed\")\n}\n"})
	g, err := New(m.repo, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	loc, err := g.Locate(ctx, report.Build{Path: "github.com/acme/shop", Revision: first.String()},
		report.Frame{Function: "github.com/acme/shop/svc.H", File: "/build/shop/svc/handler.go", Line: 4})
	if err != nil {
		t.Fatal(err)
	}
	if loc.Path != "svc/handler.go" || loc.Text != "\tpanic(\"x\")" || loc.Revision != first.String() || loc.Fallback {
		t.Errorf("Locate = %+v", loc)
	}
	a, err := g.Blame(ctx, loc, 4)
	if err != nil || a.Email != "ann@example.com" || a.Commit != first.String() || !a.Time.Equal(time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)) {
		t.Errorf("Blame at the first commit = %+v, %v", a, err)
	}
	loc.Revision = second.String()
	if a, _ := g.Blame(ctx, loc, 4); a.Email != "bob@example.com" {
		t.Errorf("Blame at the second commit names %q", a.Email)
	}
	if a, _ := g.Blame(ctx, loc, 1); a.Email != "ann@example.com" {
		t.Errorf("an unchanged line names %q, want ann", a.Email)
	}
	if _, err := g.Blame(ctx, loc, 99); !errors.Is(err, ErrNoLine) {
		t.Errorf("a line past the end: %v", err)
	}
	if _, err := g.Blame(ctx, flawless.Location{Path: "nope.go", Revision: second.String()}, 1); !errors.Is(err, ErrNoFile) {
		t.Errorf("a missing file: %v", err)
	}
}

func TestLocate(t *testing.T) {
	m := newMemRepo(t)
	head := m.commit("ann@example.com", map[string]string{
		"go.work":                    "go 1.25\n",
		"services/shop/main.go":      "package main\n\nfunc main() {}\n",
		"services/shop/cart/cart.go": "package cart\n\nfunc Add() {\n\tx := 1\n}\n",
		"services/shop/cart/util.go": "package cart\n",
		"tools/cart/cart.go":         "package cart\n\nfunc Other() {}\n",
		"vendor/github.com/x/y/y.go": "package y\n",
		"server.go":                  "package top\n",
	})
	g, err := New(m.repo, Options{ModuleDir: "services/shop"})
	if err != nil {
		t.Fatal(err)
	}
	const mod = "github.com/acme/shop"
	build := report.Build{Path: mod, Revision: head.String()}
	tests := []struct {
		reason string
		frame  report.Frame
		build  report.Build
		want   string // "" for not in the repository
		text   string
	}{
		{"a -trimpath build: module path stripped, module directory added", report.Frame{Function: mod + "/cart.Add", File: mod + "/cart/cart.go", Line: 4}, build, "services/shop/cart/cart.go", "\tx := 1"},
		{"an absolute path: the longest suffix that is a file", report.Frame{Function: mod + "/cart.Add", File: "/home/ci/work/services/shop/cart/cart.go", Line: 3}, build, "services/shop/cart/cart.go", "func Add() {"},
		{"package main", report.Frame{Function: "main.main", File: "/src/services/shop/main.go", Line: 3}, build, "services/shop/main.go", "func main() {}"},
		{"the standard library never maps, even if a suffix matches", report.Frame{Function: "net/http.(*conn).serve", File: "/usr/local/go/src/net/http/server.go", Line: 1}, build, "", ""},
		{"the module cache never maps", report.Frame{Function: "github.com/x/y.F", File: "/root/go/pkg/mod/github.com/x/y@v1.0.0/y.go", Line: 1}, build, "", ""},
		{"vendored code never maps", report.Frame{Function: "github.com/x/y.F", File: "/home/ci/work/vendor/github.com/x/y/y.go", Line: 1}, build, "", ""},
		{"another module's function never maps", report.Frame{Function: "github.com/acme/tools/cart.Other", File: "/w/tools/cart/cart.go", Line: 1}, build, "", ""},
		{"a file the revision does not have", report.Frame{Function: mod + "/cart.New", File: "/w/services/shop/cart/new.go", Line: 1}, build, "", ""},
		{"a line past the end has no text", report.Frame{Function: mod + "/cart.Add", File: mod + "/cart/cart.go", Line: 40}, build, "services/shop/cart/cart.go", ""},
	}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			loc, err := g.Locate(context.Background(), tt.build, tt.frame)
			if tt.want == "" {
				if !errors.Is(err, flawless.ErrNotInRepo) {
					t.Errorf("Locate = %+v, %v; want ErrNotInRepo", loc, err)
				}
				return
			}
			if err != nil || loc.Path != tt.want || loc.Text != tt.text {
				t.Errorf("Locate = %+v, %v; want path %q, text %q", loc, err, tt.want, tt.text)
			}
		})
	}
}

func TestUnknownRevisionFallsBackToTheBranchHead(t *testing.T) {
	m := newMemRepo(t)
	head := m.commit("ann@example.com", map[string]string{"a.go": "package a\n"})
	g, err := New(m.repo, Options{Branch: "master"})
	if err != nil {
		t.Fatal(err)
	}
	f := report.Frame{Function: "github.com/acme/a.F", File: "/x/a.go", Line: 1}
	loc, err := g.Locate(context.Background(), report.Build{Path: "github.com/acme/a", Revision: strings.Repeat("ab", 20)}, f)
	if err != nil || !loc.Fallback || loc.Revision != head.String() {
		t.Errorf("unknown revision: %+v, %v; want the head %s marked as a fallback", loc, err, head)
	}
	loc, err = g.Locate(context.Background(), report.Build{Path: "github.com/acme/a"}, f)
	if err != nil || loc.Fallback || loc.Revision != head.String() {
		t.Errorf("no revision: %+v, %v; want the head, not marked", loc, err)
	}
}

func TestQueueIsBounded(t *testing.T) {
	m := newMemRepo(t)
	head := m.commit("ann@example.com", map[string]string{"a.go": "package a\n"})
	g, _ := New(m.repo, Options{MaxConcurrent: 1, MaxQueue: 1})
	g.sem <- struct{}{} // one blame running
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error)
	go func() {
		_, err := g.Blame(ctx, flawless.Location{Path: "a.go", Revision: head.String()}, 1)
		done <- err
	}()
	for len(g.waiting) == 0 {
		time.Sleep(time.Millisecond)
	}
	_, err := g.Blame(context.Background(), flawless.Location{Path: "a.go", Revision: head.String()}, 1)
	if !errors.Is(err, flawless.ErrUnavailable) {
		t.Errorf("a blame past the queue: %v, want ErrUnavailable", err)
	}
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("the waiting blame: %v, want its context's deadline", err)
	}
	<-g.sem
	if a, err := g.Blame(context.Background(), flawless.Location{Path: "a.go", Revision: head.String()}, 1); err != nil || a.Email != "ann@example.com" {
		t.Errorf("after the queue drained: %+v, %v", a, err)
	}
}
