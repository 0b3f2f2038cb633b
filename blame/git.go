// Package blame answers, from a git repository, the questions the engine
// asks about a frame: where its file is in the repository, what its line
// says, and who last changed that line. *Git implements flawless.Source
// and flawless.Blamer, in pure Go on go-git's storage.
//
// Blame follows the one line back through history, as git blame -L n,n
// does, instead of blaming the whole file: it skips commits whose tree
// entry for the file is unchanged, diffs only where the file changed (with
// a diff that picks the same lines as git's), follows renames and merges
// as git does, treats shallow-clone boundaries as roots, and maps the
// author through .mailmap. It stops at the commit that introduced the line.
//
//	g, err := blame.Open("/srv/shop", blame.Options{Branch: "main"})
//	...
//	defer g.Close()
//	e := flawless.New(flawless.Config{Source: g, Blamer: g})
package blame

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/report"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Errors callers branch on.
var (
	// ErrNoFile is returned when the file is not in the revision.
	ErrNoFile = errors.New("blame: file not in the revision")
	// ErrNoLine is returned when the file has fewer lines than asked for.
	ErrNoLine = errors.New("blame: no such line")
)

// Options configure a Git.
type Options struct {
	// ModuleDir is the directory of the Go module inside the repository,
	// for a module that is not at the repository's root ("" for the root).
	ModuleDir string
	// Branch is the branch whose head stands in for a report's revision
	// when the repository does not have it. Empty: the remote-tracking
	// branch origin/HEAD if there is one, else HEAD.
	Branch string
	// MaxConcurrent bounds the blames running at once
	// (max_concurrent_git_blames); more wait in a queue. 0: 4.
	MaxConcurrent int
	// MaxQueue bounds the blames waiting; past it Blame answers an error
	// wrapping flawless.ErrUnavailable, so the engine tries again later.
	// 0: 1000.
	MaxQueue int
	// CacheBytes bounds the file contents kept in memory; a quarter of it
	// again holds the line maps of diffs already made. 0: 16 MiB.
	CacheBytes int
	// Logger hears about repository updates. Nil: nothing is logged.
	Logger *slog.Logger
}

// Git is a repository to map, read and blame frames in. It is safe for
// concurrent use. The caller must call Close.
type Git struct {
	opts    Options
	dir     string // work tree or bare repository; "" for a repository in memory
	logger  *slog.Logger
	sem     chan struct{}
	waiting chan struct{}

	mu      sync.Mutex // guards repo and store: go-git storage is not safe for concurrent use
	repo    *git.Repository
	store   storage.Storer
	closer  io.Closer
	shallow map[plumbing.Hash]bool
	mailmap *mailmap
	managed bool // fetched by Update: the work tree is not kept current
	gitDir  string
	graph   *commitGraph
	// bloomSkips counts commits passed over on a Bloom filter's word.
	bloomSkips int

	c *caches
}

// Open opens the repository in dir: a work tree with a .git directory, or a
// bare repository.
func Open(dir string, opts Options) (*Git, error) {
	dotgit := filepath.Join(dir, ".git")
	if st, err := os.Stat(dotgit); err != nil || !st.IsDir() {
		if _, err := os.Stat(filepath.Join(dir, "objects")); err != nil {
			return nil, fmt.Errorf("blame: %s is not a git repository", dir)
		}
		dotgit = dir
	}
	st := filesystem.NewStorageWithOptions(osfs.New(dotgit), cache.NewObjectLRU(16*cache.MiByte),
		filesystem.Options{KeepDescriptors: true})
	var wt = osfs.New(dir)
	if dotgit == dir {
		wt = nil
	}
	repo, err := git.Open(st, wt)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("blame: open %s: %w", dir, err)
	}
	g := newGit(repo, st, opts)
	g.dir, g.closer, g.gitDir = dir, st, dotgit
	if err := g.refresh(); err != nil {
		st.Close()
		return nil, err
	}
	return g, nil
}

// New wraps a repository opened by the caller, for instance one in memory
// (git.Init(memory.NewStorage(), nil)). Close does not close it.
func New(repo *git.Repository, opts Options) (*Git, error) {
	g := newGit(repo, repo.Storer, opts)
	if err := g.refresh(); err != nil {
		return nil, err
	}
	return g, nil
}

func newGit(repo *git.Repository, st storage.Storer, opts Options) *Git {
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = 4
	}
	if opts.MaxQueue <= 0 {
		opts.MaxQueue = 1000
	}
	if opts.CacheBytes <= 0 {
		opts.CacheBytes = 16 << 20
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts.ModuleDir = strings.Trim(path.Clean("/"+filepath.ToSlash(opts.ModuleDir)), "/")
	return &Git{
		opts:    opts,
		logger:  logger,
		sem:     make(chan struct{}, opts.MaxConcurrent),
		waiting: make(chan struct{}, opts.MaxQueue),
		repo:    repo,
		store:   st,
		c:       newCaches(opts.CacheBytes),
	}
}

// refresh reloads what changes when the repository is updated: shallow
// boundaries, the .mailmap, and the revisions cached as "not found".
func (g *Git) refresh() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	shallow, err := g.store.Shallow()
	if err != nil {
		return fmt.Errorf("blame: read shallow boundaries: %w", err)
	}
	g.shallow = map[plumbing.Hash]bool{}
	for _, h := range shallow {
		g.shallow[h] = true
	}
	g.mailmap = g.loadMailmap()
	if g.gitDir != "" {
		g.graph = openCommitGraph(g.gitDir)
	}
	g.c.forgetMisses()
	return nil
}

// Close releases the repository's files.
func (g *Git) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closer != nil {
		err := g.closer.Close()
		g.closer = nil
		return err
	}
	return nil
}

// Repository returns the underlying repository. Callers must not use it
// while blames run.
func (g *Git) Repository() *git.Repository { return g.repo }

// Locate implements flawless.Source: it resolves the report's revision
// (or falls back to the branch head), maps the frame's file to a path of
// that revision's tree, and reads the line.
func (g *Git) Locate(ctx context.Context, b report.Build, f report.Frame) (flawless.Location, error) {
	if err := ctx.Err(); err != nil {
		return flawless.Location{}, err
	}
	if !belongsToModule(b.Path, f) {
		return flawless.Location{}, flawless.ErrNotInRepo
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	rev, fallback, err := g.resolve(b.Revision)
	if err != nil {
		return flawless.Location{}, err
	}
	c, err := g.commit(rev)
	if err != nil {
		return flawless.Location{}, err
	}
	p, ok := g.mapPath(c.tree, b.Path, f.File)
	if !ok {
		return flawless.Location{}, flawless.ErrNotInRepo
	}
	loc := flawless.Location{Path: p, Revision: rev.String(), Fallback: fallback}
	blob, ok := g.lookup(c.tree, p)
	if !ok {
		return flawless.Location{}, flawless.ErrNotInRepo
	}
	if data, err := g.blob(blob); err == nil {
		loc.Text = lineText(data, f.Line)
	}
	return loc, nil
}

// belongsToModule reports whether a frame may be in the repository: its
// function is in the main module (or package main), and its file is not in
// the module cache, a vendor directory or the standard library.
func belongsToModule(module string, f report.Frame) bool {
	file := filepath.ToSlash(f.File)
	if strings.Contains(file, "/pkg/mod/") || strings.Contains(file, "/vendor/") || strings.HasPrefix(file, "vendor/") {
		return false
	}
	pkg := strings.TrimSuffix(report.Package(f.Function), "_test")
	switch {
	case f.Function == "":
		return module == "" || strings.HasPrefix(file, module+"/") || path.IsAbs(file)
	case pkg == "main", module != "" && (pkg == module || strings.HasPrefix(pkg, module+"/")):
		return true
	case module != "":
		return false
	}
	// Without a module path, keep out whatever looks like the standard
	// library, and module files of -trimpath builds (path@version/...).
	return !isStdLike(pkg) && !strings.Contains(file, "@")
}

func isStdLike(pkg string) bool {
	first, _, _ := strings.Cut(pkg, "/")
	return !strings.Contains(first, ".")
}

// lineText returns line n (1-based) of data without its line ending, or
// "" when there is no such line.
func lineText(data []byte, n int) string {
	if n < 1 {
		return ""
	}
	lines := splitLines(data)
	if n > len(lines) {
		return ""
	}
	return strings.TrimRight(string(lines[n-1]), "\r\n")
}

// Blame implements flawless.Blamer: who last changed line of loc.Path at
// loc.Revision, as git blame -L line,line would say.
func (g *Git) Blame(ctx context.Context, loc flawless.Location, line int) (flawless.Author, error) {
	release, err := g.admit(ctx)
	if err != nil {
		return flawless.Author{}, err
	}
	defer release()
	g.mu.Lock()
	defer g.mu.Unlock()
	rev := plumbing.NewHash(loc.Revision)
	if loc.Revision == "" || rev.IsZero() {
		h, _, err := g.resolve("")
		if err != nil {
			return flawless.Author{}, err
		}
		rev = h
	}
	key := resultKey{rev, loc.Path, line}
	if a, ok := g.c.result(key); ok {
		return a, nil
	}
	final, err := g.walk(ctx, rev, loc.Path, line-1)
	if err != nil {
		return flawless.Author{}, fmt.Errorf("blame %s:%d at %s: %w", loc.Path, line, short(rev), err)
	}
	who, err := g.author(final)
	if err != nil {
		return flawless.Author{}, err
	}
	name, email := g.mailmap.lookup(who.Name, who.Email)
	a := flawless.Author{Name: name, Email: email, Time: who.When, Commit: final.String()}
	g.c.putResult(key, a)
	return a, nil
}

func short(h plumbing.Hash) string { return h.String()[:12] }

// admit waits for a place among the blames that may run at once, in a
// bounded queue.
func (g *Git) admit(ctx context.Context) (func(), error) {
	select {
	case g.waiting <- struct{}{}:
	default:
		return nil, fmt.Errorf("blame: %d blames already waiting: %w", cap(g.waiting), flawless.ErrUnavailable)
	}
	defer func() { <-g.waiting }()
	select {
	case g.sem <- struct{}{}:
		return func() { <-g.sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// resolve returns the commit of a report's revision, or the branch head
// and true when the repository does not have that revision.
func (g *Git) resolve(revision string) (plumbing.Hash, bool, error) {
	if revision != "" && plumbing.IsHash(revision) {
		h := plumbing.NewHash(revision)
		if known, ok := g.c.hasCommit(h); ok {
			if known {
				return h, false, nil
			}
		} else if _, err := g.commit(h); err == nil {
			g.c.setHasCommit(h, true)
			return h, false, nil
		} else {
			g.c.setHasCommit(h, false)
		}
	}
	head, err := g.head()
	if err != nil {
		return plumbing.ZeroHash, false, err
	}
	return head, revision != "", nil
}

// head returns the commit of the configured branch, of origin/HEAD, or of
// HEAD.
func (g *Git) head() (plumbing.Hash, error) { return g.headLocked() }

// headLocked is head for callers holding g.mu.
func (g *Git) headLocked() (plumbing.Hash, error) {
	var names []plumbing.ReferenceName
	if b := g.opts.Branch; b != "" {
		names = append(names, plumbing.NewRemoteReferenceName("origin", b), plumbing.NewBranchReferenceName(b), plumbing.ReferenceName(b))
	} else {
		names = append(names, plumbing.NewRemoteHEADReferenceName("origin"))
	}
	names = append(names, plumbing.HEAD)
	for _, n := range names {
		ref, err := g.repo.Reference(n, true)
		if err == nil && !ref.Hash().IsZero() {
			return ref.Hash(), nil
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("blame: no branch head to blame at (branch %q)", g.opts.Branch)
}

// mapPath maps a frame's file to a path of the tree: the module-relative
// path of a -trimpath build, or the longest suffix of an absolute path
// that is a file of the tree. Results are cached per tree.
func (g *Git) mapPath(tree plumbing.Hash, module, file string) (string, bool) {
	file = filepath.ToSlash(file)
	key := pathKey{tree, module, file}
	if p, ok := g.c.path(key); ok {
		return p, p != ""
	}
	p := g.findPath(tree, module, file)
	g.c.putPath(key, p)
	return p, p != ""
}

func (g *Git) findPath(tree plumbing.Hash, module, file string) string {
	isFile := func(p string) bool {
		h, ok := g.lookup(tree, p)
		return ok && !h.IsZero()
	}
	if module != "" && strings.HasPrefix(file, module+"/") {
		p := path.Join(g.opts.ModuleDir, strings.TrimPrefix(file, module+"/"))
		if isFile(p) {
			return p
		}
	}
	parts := strings.Split(strings.TrimPrefix(file, "/"), "/")
	for i := range parts {
		p := strings.Join(parts[i:], "/")
		if p != "" && isFile(p) {
			return p
		}
	}
	return ""
}

// commitInfo is what blame needs of a commit on the way.
type commitInfo struct {
	tree    plumbing.Hash
	parents []plumbing.Hash
}

// commit returns a commit's tree and parents, from the commit-graph when
// it has the commit, else from the commit object.
func (g *Git) commit(h plumbing.Hash) (*commitInfo, error) {
	if c, ok := g.c.commit(h); ok {
		return c, nil
	}
	if g.graph != nil {
		if info, ok := g.graph.commit(h); ok {
			g.c.putCommit(h, info)
			return info, nil
		}
	}
	c, err := g.decodeCommit(h)
	if err != nil {
		return nil, err
	}
	info := &commitInfo{tree: c.TreeHash, parents: c.ParentHashes}
	g.c.putCommit(h, info)
	return info, nil
}

func (g *Git) decodeCommit(h plumbing.Hash) (*object.Commit, error) {
	o, err := g.store.EncodedObject(plumbing.CommitObject, h)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", short(h), err)
	}
	var c object.Commit
	if err := c.Decode(o); err != nil {
		return nil, fmt.Errorf("commit %s: %w", short(h), err)
	}
	return &c, nil
}

// author returns the author of a commit, as recorded (before .mailmap).
func (g *Git) author(h plumbing.Hash) (object.Signature, error) {
	c, err := g.decodeCommit(h)
	if err != nil {
		return object.Signature{}, err
	}
	return c.Author, nil
}

// lookup finds the blob at p in a tree; it reports false when p is not a
// file there.
func (g *Git) lookup(tree plumbing.Hash, p string) (plumbing.Hash, bool) {
	h := tree
	for p != "" {
		name, rest, _ := strings.Cut(p, "/")
		e, ok := g.entry(h, name)
		if !ok {
			return plumbing.ZeroHash, false
		}
		if rest == "" {
			if !e.file {
				return plumbing.ZeroHash, false
			}
			return e.hash, true
		}
		if e.file {
			return plumbing.ZeroHash, false
		}
		h, p = e.hash, rest
	}
	return plumbing.ZeroHash, false
}

type treeEntry struct {
	hash plumbing.Hash
	file bool
}

// entry looks a name up in a tree by scanning its raw bytes, memoised per
// (tree, name).
func (g *Git) entry(tree plumbing.Hash, name string) (treeEntry, bool) {
	key := entryKey{tree, name}
	if e, ok := g.c.entry(key); ok {
		return e, !e.hash.IsZero()
	}
	raw, err := g.raw(plumbing.TreeObject, tree)
	var e treeEntry
	if err == nil {
		e = scanTree(raw, name)
	}
	g.c.putEntry(key, e)
	return e, !e.hash.IsZero()
}

// scanTree finds name in a raw tree object: entries of "mode name\0" and a
// 20-byte hash.
func scanTree(raw []byte, name string) treeEntry {
	for len(raw) > 0 {
		sp := indexByte(raw, ' ')
		nul := indexByte(raw, 0)
		if sp < 0 || nul < sp || nul+21 > len(raw) {
			return treeEntry{}
		}
		mode := string(raw[:sp])
		if string(raw[sp+1:nul]) == name {
			var h plumbing.Hash
			copy(h[:], raw[nul+1:nul+21])
			// 40000 is a directory, 160000 a submodule; files are 100644,
			// 100755 and 120000 (a link, blamed like a file, as git does).
			return treeEntry{hash: h, file: mode != "40000" && mode != "160000"}
		}
		raw = raw[nul+21:]
	}
	return treeEntry{}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// raw reads an object's content.
func (g *Git) raw(t plumbing.ObjectType, h plumbing.Hash) ([]byte, error) {
	o, err := g.store.EncodedObject(t, h)
	if err != nil {
		return nil, err
	}
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// blob reads a file's content through the content cache.
func (g *Git) blob(h plumbing.Hash) ([]byte, error) {
	if b, ok := g.c.blob(h); ok {
		return b, nil
	}
	b, err := g.raw(plumbing.BlobObject, h)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", short(h), err)
	}
	g.c.putBlob(h, b)
	return b, nil
}
