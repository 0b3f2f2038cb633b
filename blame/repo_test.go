package blame

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/flawless-go/flawless"
)

// testRepo is a repository built with the git command.
type testRepo struct {
	t    testing.TB
	dir  string
	tick int
}

func newTestRepo(t testing.TB) *testRepo {
	t.Helper()
	needGit(t)
	r := &testRepo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	r.git("config", "user.name", "Committer")
	r.git("config", "user.email", "committer@example.com")
	r.git("config", "commit.gpgsign", "false")
	return r
}

func (r *testRepo) git(args ...string) string {
	r.t.Helper()
	out, err := r.gitErr(args...)
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (r *testRepo) gitErr(args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	r.tick++
	date := fmt.Sprintf("%d +0000", 1_600_000_000+r.tick*3600)
	cmd.Env = append(os.Environ(), "GIT_COMMITTER_DATE="+date, "GIT_AUTHOR_DATE="+date, "GIT_CONFIG_NOSYSTEM=1", "HOME="+r.dir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (r *testRepo) write(name, content string) {
	r.t.Helper()
	p := filepath.Join(r.dir, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *testRepo) read(name string) string {
	b, _ := os.ReadFile(filepath.Join(r.dir, name))
	return string(b)
}

func (r *testRepo) commit(author, msg string) {
	r.t.Helper()
	r.git("add", "-A")
	r.git("-c", "user.name="+strings.Split(author, "@")[0], "-c", "user.email=committer@example.com",
		"commit", "-q", "--allow-empty", "--author", strings.Split(author, "@")[0]+" <"+author+">", "-m", msg)
}

// gitBlame returns, for every line of file at rev, the commit and the
// (mailmapped) author address git blame gives.
func gitBlame(t testing.TB, dir, rev, file string) (commits, emails []string) {
	t.Helper()
	cmd := exec.Command("git", "blame", "--line-porcelain", rev, "--", file)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git blame %s: %v", file, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && len(f[0]) == 40 && !strings.HasPrefix(l, "\t"):
			commits = append(commits, f[0])
		case strings.HasPrefix(l, "author-mail "):
			emails = append(emails, strings.Trim(strings.TrimPrefix(l, "author-mail "), "<>"))
		}
	}
	return commits, emails
}

// checkAgainstGit blames every line of every listed file with g and with
// git, and reports each disagreement.
func checkAgainstGit(t *testing.T, g *Git, dir string, files []string) int {
	t.Helper()
	head := strings.TrimSpace(run(t, dir, "git", "rev-parse", "HEAD"))
	checked := 0
	for _, f := range files {
		commits, emails := gitBlame(t, dir, head, f)
		for i := range commits {
			a, err := g.Blame(context.Background(), flawless.Location{Path: f, Revision: head}, i+1)
			if err != nil {
				t.Errorf("%s:%d: %v", f, i+1, err)
				continue
			}
			if a.Commit != commits[i] || a.Email != emails[i] {
				t.Errorf("%s:%d: blamed %s <%s>, git says %s <%s>", f, i+1, a.Commit[:10], a.Email, commits[i][:10], emails[i])
			}
			checked++
		}
	}
	return checked
}

func run(t testing.TB, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func openTest(t *testing.T, dir string) *Git {
	t.Helper()
	g, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

var authors = []string{"ann@example.com", "bob@example.com", "carl@example.com", "dora@example.com", "eve@example.com", "old-ann@laptop.local"}

func editLines(r *rand.Rand, content string) string {
	lines := strings.Split(strings.TrimSuffix(content, "\n"), "\n")
	return strings.Join(mutate(r, lines), "\n") + "\n"
}

// TestBlameAgreesWithGitOnRandomHistories builds histories of 30 to 40
// commits by six authors over a handful of Go-like files full of ambiguous
// lines: edits, whitespace-only changes, moved lines, branches merged back
// (conflicts resolved by hand), renames within a directory, files deleted
// and re-added, and a .mailmap that maps an old address. Every line of
// every file must be blamed on git's commit and address.
func TestBlameAgreesWithGitOnRandomHistories(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6, 7, 8}
	if testing.Short() {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			repo := newTestRepo(t)
			files := map[string]bool{}
			for i := range 3 {
				name := fmt.Sprintf("pkg/file%d.go", i)
				repo.write(name, strings.Join(randomText(rng, 30+rng.IntN(40)), "\n")+"\n")
				files[name] = true
			}
			repo.write(".mailmap", "Ann <ann@example.com> <old-ann@laptop.local>\n")
			repo.commit(authors[0], "start")
			pick := func() string {
				names := make([]string, 0, len(files))
				for n := range files {
					names = append(names, n)
				}
				sort.Strings(names)
				return names[rng.IntN(len(names))]
			}
			for step := range 36 {
				author := authors[rng.IntN(len(authors))]
				switch k := rng.IntN(20); {
				case k < 12: // edit a file
					f := pick()
					repo.write(f, editLines(rng, repo.read(f)))
				case k < 13: // whitespace-only edit
					f := pick()
					repo.write(f, strings.ReplaceAll(repo.read(f), "\tfoo()", "    foo()"))
				case k < 14: // move a line within the file
					f := pick()
					lines := strings.Split(strings.TrimSuffix(repo.read(f), "\n"), "\n")
					if len(lines) > 3 {
						i, j := rng.IntN(len(lines)), rng.IntN(len(lines))
						l := lines[i]
						lines = append(lines[:i], lines[i+1:]...)
						j = min(j, len(lines))
						lines = append(lines[:j], append([]string{l}, lines[j:]...)...)
						repo.write(f, strings.Join(lines, "\n")+"\n")
					}
				case k < 15: // rename within the directory, sometimes with an edit
					f := pick()
					to := fmt.Sprintf("pkg/renamed%d.go", step)
					repo.git("mv", f, to)
					delete(files, f)
					files[to] = true
					if rng.IntN(2) == 0 {
						repo.write(to, editLines(rng, repo.read(to)))
					}
				case k < 16: // delete a file and add it back later
					if len(files) > 1 {
						f := pick()
						content := repo.read(f)
						repo.git("rm", "-q", f)
						repo.commit(author, "delete "+f)
						repo.write(f, content)
					}
				default: // a branch merged back
					repo.git("checkout", "-q", "-b", fmt.Sprintf("side%d", step))
					for range 1 + rng.IntN(3) {
						f := pick()
						repo.write(f, editLines(rng, repo.read(f)))
						repo.commit(authors[rng.IntN(len(authors))], "side work")
					}
					repo.git("checkout", "-q", "main")
					f := pick()
					repo.write(f, editLines(rng, repo.read(f)))
					repo.commit(authors[rng.IntN(len(authors))], "main work")
					if _, err := repo.gitErr("merge", "-q", "--no-ff", "-m", "merge", fmt.Sprintf("side%d", step)); err != nil {
						// A conflict, resolved by hand: keep everything but the markers.
						for name := range files {
							c := repo.read(name)
							if strings.Contains(c, "<<<<<<<") {
								var kept []string
								for _, l := range strings.Split(c, "\n") {
									if !strings.HasPrefix(l, "<<<<<<<") && !strings.HasPrefix(l, "=======") && !strings.HasPrefix(l, ">>>>>>>") {
										kept = append(kept, l)
									}
								}
								repo.write(name, strings.Join(kept, "\n"))
							}
						}
						repo.commit(author, "merge with conflicts resolved")
					}
					continue
				}
				repo.commit(author, fmt.Sprintf("step %d", step))
			}
			if seed%2 == 0 {
				// Half the histories are read through a commit-graph with
				// changed-path Bloom filters, as git maintenance leaves it.
				repo.git("commit-graph", "write", "--reachable", "--changed-paths")
			}
			g := openTest(t, repo.dir)
			if seed%2 == 0 && g.graph == nil {
				t.Fatal("the commit-graph was not read")
			}
			var names []string
			for n := range files {
				names = append(names, n)
			}
			sort.Strings(names)
			merges := strings.Count(repo.git("log", "--merges", "--format=%H"), "\n")
			conflicts := strings.Count(repo.git("log", "--format=%s"), "conflicts resolved")
			renames := strings.Count(repo.git("log", "--format=", "--name-status", "-M"), "\nR")
			mapped := strings.Count(repo.git("log", "--format=%ae"), "old-ann@laptop.local")
			n := checkAgainstGit(t, g, repo.dir, names)
			t.Logf("%d lines of %d files; %d merges (%d with conflicts), %d renames, %d commits by the mailmapped address", n, len(names), merges, conflicts, renames, mapped)
			if seed%2 == 0 && g.bloomSkips == 0 {
				t.Error("no commit was passed over on a Bloom filter's word")
			}
			if n < 100 {
				t.Errorf("only %d lines checked", n)
			}
		})
	}
}

func TestBlameInAShallowCloneStopsAtTheBoundary(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	repo := newTestRepo(t)
	repo.write("a.go", strings.Join(randomText(rng, 40), "\n")+"\n")
	repo.commit(authors[0], "start")
	for i := range 12 {
		repo.write("a.go", editLines(rng, repo.read("a.go")))
		repo.commit(authors[i%5], "edit")
	}
	clone := filepath.Join(t.TempDir(), "clone")
	run(t, repo.dir, "git", "clone", "-q", "--depth", "4", "file://"+repo.dir, clone)
	g := openTest(t, clone)
	if len(g.shallow) == 0 {
		t.Fatal("the clone has no shallow boundary")
	}
	checkAgainstGit(t, g, clone, []string{"a.go"})
}

func TestMailmap(t *testing.T) {
	m := parseMailmap(`# comment
Proper Name <commit@example.com>
<proper@example.com> <Other@Example.com>
Ann Smith <ann@example.com> <ann@laptop> # trailing comment
Bob <bob@example.com> Bobby <shared@example.com>
`)
	tests := []struct{ name, email, wantName, wantEmail string }{
		{"X", "commit@example.com", "Proper Name", "commit@example.com"},
		{"X", "other@example.com", "X", "proper@example.com"},
		{"a", "ANN@LAPTOP", "Ann Smith", "ann@example.com"},
		{"Bobby", "shared@example.com", "Bob", "bob@example.com"},
		{"Someone", "shared@example.com", "Someone", "shared@example.com"},
		{"Z", "z@example.com", "Z", "z@example.com"},
	}
	for _, tt := range tests {
		n, e := m.lookup(tt.name, tt.email)
		if n != tt.wantName || e != tt.wantEmail {
			t.Errorf("lookup(%q, %q) = %q, %q; want %q, %q", tt.name, tt.email, n, e, tt.wantName, tt.wantEmail)
		}
	}
}

var _ = time.Now
