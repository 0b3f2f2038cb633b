package blame

import (
	"sync"

	"github.com/flawless-go/flawless"
	"github.com/go-git/go-git/v5/plumbing"
)

type (
	pathKey struct {
		tree         plumbing.Hash
		module, file string
	}
	entryKey struct {
		tree plumbing.Hash
		name string
	}
	resultKey struct {
		rev  plumbing.Hash
		path string
		line int
	}
	mapKey struct{ old, new plumbing.Hash }
)

// Bounds of the caches, in entries; the blob and line-map caches are
// bounded in bytes.
const (
	maxCommits = 200_000
	maxEntries = 500_000
	maxPaths   = 50_000
	maxResults = 100_000
	maxRevs    = 10_000
)

// caches hold what blame has read, so that repeated and nearby questions
// cost little. Each is bounded; a full cache is emptied, except for the
// byte-bounded ones, which drop their oldest items.
type caches struct {
	mu       sync.Mutex
	commits  map[plumbing.Hash]*commitInfo
	entries  map[entryKey]treeEntry
	paths    map[pathKey]string
	results  map[resultKey]flawless.Author
	revs     map[plumbing.Hash]bool
	blobs    *byteLRU[plumbing.Hash, []byte]
	lineMaps *byteLRU[mapKey, lineMap]
}

func newCaches(bytes int) *caches {
	return &caches{
		commits:  map[plumbing.Hash]*commitInfo{},
		entries:  map[entryKey]treeEntry{},
		paths:    map[pathKey]string{},
		results:  map[resultKey]flawless.Author{},
		revs:     map[plumbing.Hash]bool{},
		blobs:    newByteLRU[plumbing.Hash, []byte](bytes, func(b []byte) int { return len(b) + 64 }),
		lineMaps: newByteLRU[mapKey, lineMap](max(bytes/4, 4<<20), lineMap.size),
	}
}

func get[K comparable, V any](c *caches, m map[K]V, k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := m[k]
	return v, ok
}

func put[K comparable, V any](c *caches, m map[K]V, k K, v V, limit int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(m) >= limit {
		clear(m)
	}
	m[k] = v
}

func (c *caches) commit(h plumbing.Hash) (*commitInfo, bool) { return get(c, c.commits, h) }
func (c *caches) putCommit(h plumbing.Hash, i *commitInfo)   { put(c, c.commits, h, i, maxCommits) }
func (c *caches) entry(k entryKey) (treeEntry, bool)         { return get(c, c.entries, k) }
func (c *caches) putEntry(k entryKey, e treeEntry)           { put(c, c.entries, k, e, maxEntries) }
func (c *caches) path(k pathKey) (string, bool)              { return get(c, c.paths, k) }
func (c *caches) putPath(k pathKey, p string)                { put(c, c.paths, k, p, maxPaths) }
func (c *caches) result(k resultKey) (flawless.Author, bool) { return get(c, c.results, k) }
func (c *caches) putResult(k resultKey, a flawless.Author)   { put(c, c.results, k, a, maxResults) }
func (c *caches) hasCommit(h plumbing.Hash) (bool, bool)     { return get(c, c.revs, h) }
func (c *caches) setHasCommit(h plumbing.Hash, known bool)   { put(c, c.revs, h, known, maxRevs) }
func (c *caches) blob(h plumbing.Hash) ([]byte, bool)        { return c.blobs.get(h) }
func (c *caches) putBlob(h plumbing.Hash, b []byte)          { c.blobs.put(h, b) }
func (c *caches) lineMap(k mapKey) (lineMap, bool)           { return c.lineMaps.get(k) }
func (c *caches) putLineMap(k mapKey, m lineMap)             { c.lineMaps.put(k, m) }

// forgetMisses drops what an update of the repository can change: the
// revisions found missing, and the mapping of paths and blame results at
// branch heads (results at a fixed commit stay true).
func (c *caches) forgetMisses() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, known := range c.revs {
		if !known {
			delete(c.revs, h)
		}
	}
}

// byteLRU is a least-recently-used cache bounded by the bytes of its
// values.
type byteLRU[K comparable, V any] struct {
	mu    sync.Mutex
	limit int
	size  func(V) int
	used  int
	items map[K]*lruItem[K, V]
	head  lruItem[K, V] // sentinel: head.next is the newest
}

type lruItem[K comparable, V any] struct {
	key        K
	val        V
	prev, next *lruItem[K, V]
}

func newByteLRU[K comparable, V any](limit int, size func(V) int) *byteLRU[K, V] {
	l := &byteLRU[K, V]{limit: limit, size: size, items: map[K]*lruItem[K, V]{}}
	l.head.next, l.head.prev = &l.head, &l.head
	return l
}

func (l *byteLRU[K, V]) get(k K) (V, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	it, ok := l.items[k]
	if !ok {
		var zero V
		return zero, false
	}
	l.unlink(it)
	l.pushFront(it)
	return it.val, true
}

func (l *byteLRU[K, V]) put(k K, v V) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.size(v)
	if n > l.limit {
		return
	}
	if it, ok := l.items[k]; ok {
		l.used -= l.size(it.val)
		l.unlink(it)
		delete(l.items, k)
	}
	for l.used+n > l.limit && l.head.prev != &l.head {
		old := l.head.prev
		l.used -= l.size(old.val)
		l.unlink(old)
		delete(l.items, old.key)
	}
	it := &lruItem[K, V]{key: k, val: v}
	l.items[k] = it
	l.pushFront(it)
	l.used += n
}

func (l *byteLRU[K, V]) unlink(it *lruItem[K, V]) {
	it.prev.next, it.next.prev = it.next, it.prev
}

func (l *byteLRU[K, V]) pushFront(it *lruItem[K, V]) {
	it.next, it.prev = l.head.next, &l.head
	l.head.next.prev = it
	l.head.next = it
}
