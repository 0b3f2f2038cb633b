package blame

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/flawless-go/flawless/report"
)

func TestNaturalSort(t *testing.T) {
	names := []string{"origin/release-10", "origin/release-9", "origin/release-2", "origin/release-10a", "origin/release-010", "origin/release"}
	sort.Slice(names, func(i, j int) bool { return naturalLess(names[i], names[j]) })
	want := "origin/release origin/release-2 origin/release-9 origin/release-10 origin/release-010 origin/release-10a"
	if got := strings.Join(names, " "); got != want && got != strings.Replace(want, "origin/release-10 origin/release-010", "origin/release-010 origin/release-10", 1) {
		t.Errorf("natural order = %s", got)
	}
}

func TestCloneFetchAndTrackTheNewestBranch(t *testing.T) {
	origin := newTestRepo(t)
	origin.write("a.go", "package a\n\nfunc A() {}\n")
	origin.commit("ann@example.com", "start")
	for _, b := range []string{"release-2", "release-9", "release-10"} {
		origin.git("checkout", "-q", "-b", b, "main")
		origin.write("a.go", "package a\n\nfunc A() { /* "+b+" */ }\n")
		origin.commit("bob@example.com", b)
	}
	origin.git("checkout", "-q", "main")

	dir := filepath.Join(t.TempDir(), "clone")
	if err := Clone(context.Background(), "file://"+origin.dir, dir); err != nil {
		t.Fatal(err)
	}
	if err := Clone(context.Background(), "file://"+origin.dir, dir); err != nil {
		t.Errorf("cloning into an existing repository: %v, want a no-op", err)
	}
	g := openTest(t, dir)
	if err := g.Update(context.Background(), "origin/release-"); err != nil {
		t.Fatal(err)
	}
	if g.opts.Branch != "release-10" {
		t.Errorf("tracking %q, want release-10 (natural order)", g.opts.Branch)
	}
	frame := report.Frame{Function: "github.com/acme/a.A", File: "/w/a.go", Line: 3}
	build := report.Build{Path: "github.com/acme/a", Revision: strings.Repeat("0a", 20)}
	loc, err := g.Locate(context.Background(), build, frame)
	if err != nil || !strings.Contains(loc.Text, "release-10") || !loc.Fallback {
		t.Fatalf("Locate at the tracked branch = %+v, %v", loc, err)
	}

	// A new commit upstream arrives with the next update.
	origin.git("checkout", "-q", "release-10")
	origin.write("a.go", "package a\n\nfunc A() { /* hotfix */ }\n")
	origin.commit("carl@example.com", "hotfix")
	if err := g.Update(context.Background(), "origin/release-"); err != nil {
		t.Fatal(err)
	}
	loc, err = g.Locate(context.Background(), build, frame)
	if err != nil || !strings.Contains(loc.Text, "hotfix") {
		t.Errorf("after the fetch: %+v, %v", loc, err)
	}
	a, err := g.Blame(context.Background(), loc, 3)
	if err != nil || a.Email != "carl@example.com" {
		t.Errorf("blame after the fetch = %+v, %v", a, err)
	}
	if err := g.Update(context.Background(), "origin/nothing-"); err == nil || !strings.Contains(err.Error(), "no remote branch matches") {
		t.Errorf("a pattern matching nothing: %v", err)
	}
}

func TestCredentialsNeverShow(t *testing.T) {
	const secret = "hunter2-s3cret"
	raw := "http://deploy:" + secret + "@127.0.0.1:1/shop.git"
	err := Clone(context.Background(), raw, filepath.Join(t.TempDir(), "c"))
	if err == nil {
		t.Fatal("cloning from a closed port succeeded")
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("the error shows the password: %v", err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("the error does not say where: %v", err)
	}
	for in, want := range map[string]string{
		"https://user:pw@github.com/a/b.git":  "https://redacted@github.com/a/b.git",
		"https://ghp_tokentoken@github.com/x": "https://redacted@github.com/x",
		"git@github.com:a/b.git":              "git@github.com:a/b.git",
		"/srv/repo":                           "/srv/repo",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
