package blame

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
)

// Clone clones rawURL into dir, unless dir already holds a repository.
// Credentials in the URL never appear in the errors it returns.
func Clone(ctx context.Context, rawURL, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, "objects")); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	_, err := git.PlainCloneContext(ctx, dir, false, &git.CloneOptions{URL: rawURL, NoCheckout: false})
	if err != nil {
		return fmt.Errorf("blame: clone %s: %s", RedactURL(rawURL), redactIn(err.Error(), rawURL))
	}
	return nil
}

// Update fetches the remote "origin" and, with a branch pattern, makes the
// newest matching remote branch the one to blame at when a report's
// revision is missing. It then reloads the shallow boundaries and the
// .mailmap. A repository without a remote is only reloaded.
func (g *Git) Update(ctx context.Context, branchPattern string) error {
	var re *regexp.Regexp
	if branchPattern != "" {
		var err error
		if re, err = regexp.Compile("^(?:" + branchPattern + ")"); err != nil {
			return fmt.Errorf("blame: repo_branch_pattern: %w", err)
		}
	}
	g.mu.Lock()
	remote, err := g.repo.Remote("origin")
	if err == nil {
		rawURL := ""
		if urls := remote.Config().URLs; len(urls) > 0 {
			rawURL = urls[0]
		}
		err = g.repo.FetchContext(ctx, &git.FetchOptions{
			RemoteName: "origin",
			RefSpecs:   []config.RefSpec{"+refs/heads/*:refs/remotes/origin/*"},
			Force:      true,
			Prune:      true,
		})
		if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
			g.mu.Unlock()
			return fmt.Errorf("blame: fetch %s: %s", RedactURL(rawURL), redactIn(err.Error(), rawURL))
		}
	} else if !errors.Is(err, git.ErrRemoteNotFound) {
		g.mu.Unlock()
		return fmt.Errorf("blame: %w", err)
	}
	if remote != nil {
		g.managed = true
	}
	if re != nil {
		branch, err := g.newestBranch(re)
		if err != nil {
			g.mu.Unlock()
			return err
		}
		if branch != g.opts.Branch {
			g.logger.Info("tracking branch", "branch", branch)
		}
		g.opts.Branch = branch
	}
	g.mu.Unlock()
	return g.refresh()
}

// newestBranch returns the remote branch, named "origin/…", that matches
// re and sorts last in natural order (release-10 after release-9).
func (g *Git) newestBranch(re *regexp.Regexp) (string, error) {
	refs, err := g.repo.References()
	if err != nil {
		return "", err
	}
	var names []string
	refs.ForEach(func(r *plumbing.Reference) error {
		n := r.Name()
		if n.IsRemote() && !strings.HasSuffix(n.String(), "/HEAD") {
			short := n.Short() // origin/release-12
			if re.MatchString(short) {
				names = append(names, short)
			}
		}
		return nil
	})
	if len(names) == 0 {
		return "", fmt.Errorf("blame: no remote branch matches repo_branch_pattern %q", re.String())
	}
	sort.Slice(names, func(i, j int) bool { return naturalLess(names[i], names[j]) })
	return strings.TrimPrefix(names[len(names)-1], "origin/"), nil
}

// naturalLess compares strings with runs of digits compared as numbers.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digitRun(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// Keep updates the repository every interval until ctx ends, logging
// failures (with credentials redacted).
func (g *Git) Keep(ctx context.Context, interval time.Duration, branchPattern string) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			uctx, cancel := context.WithTimeout(ctx, max(interval, time.Minute))
			if err := g.Update(uctx, branchPattern); err != nil {
				g.logger.Error("repository update failed", "err", err)
			}
			cancel()
		}
	}
}

// RedactURL returns rawURL with any password or token replaced, for logs,
// errors and pages.
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		if i := strings.Index(rawURL, "@"); i >= 0 && strings.Contains(rawURL[:i], "://") {
			return rawURL[:strings.Index(rawURL, "://")+3] + "redacted" + rawURL[i:]
		}
		return rawURL
	}
	u.User = url.User("redacted")
	return u.String()
}

// redactIn removes the URL's secrets from a message that may quote it.
func redactIn(msg, rawURL string) string {
	msg = strings.ReplaceAll(msg, rawURL, RedactURL(rawURL))
	if u, err := url.Parse(rawURL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			msg = strings.ReplaceAll(msg, p, "redacted")
		}
		if name := u.User.Username(); len(name) > 8 {
			msg = strings.ReplaceAll(msg, name, "redacted") // a token passed as the user name
		}
	}
	return msg
}
