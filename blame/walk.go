package blame

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// walk follows line (0-based) of path at commit rev back through history
// and returns the commit that last changed it. At each commit it looks at
// the parents in order, as git blame does: the first parent whose file is
// identical takes the line as it is; else a parent that lacks the path may
// have the file under another name (a rename); else the first parent whose
// diff leaves the line unchanged takes it, at the line it has there; else
// this commit changed the line.
func (g *Git) walk(ctx context.Context, rev plumbing.Hash, path string, line int) (plumbing.Hash, error) {
	c, err := g.commit(rev)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	blob, ok := g.lookup(c.tree, path)
	if !ok {
		return plumbing.ZeroHash, ErrNoFile
	}
	if data, err := g.blob(blob); err != nil {
		return plumbing.ZeroHash, err
	} else if line < 0 || line >= countLines(data) {
		return plumbing.ZeroHash, fmt.Errorf("%w (the file has %d lines)", ErrNoLine, countLines(data))
	}
	for steps := 0; ; steps++ {
		if steps%64 == 0 {
			if err := ctx.Err(); err != nil {
				return plumbing.ZeroHash, err
			}
		}
		if len(c.parents) == 0 || g.shallow[rev] {
			return rev, nil
		}
		// The Bloom filter may say, without a tree read, that the path did
		// not change against the first parent: the line is the first
		// parent's, where it is.
		if g.graph != nil && g.graph.unchanged(rev, path) {
			if pc, err := g.commit(c.parents[0]); err == nil {
				g.bloomSkips++
				rev, c = c.parents[0], pc
				continue
			}
		}
		n := len(c.parents)
		parents := make([]*commitInfo, n)
		ppath := make([]string, n)
		pblob := make([]plumbing.Hash, n)
		moved := false
		for i, ph := range c.parents {
			pc, err := g.commit(ph)
			if err != nil {
				continue // a missing parent (partial clone) is not followed
			}
			parents[i] = pc
			if h, ok := g.lookup(pc.tree, path); ok {
				if h == blob {
					rev, c, moved = ph, pc, true
					break
				}
				ppath[i], pblob[i] = path, h
			}
		}
		if moved {
			continue
		}
		for i, pc := range parents {
			if pc == nil || ppath[i] != "" {
				continue
			}
			if from, h, ok := g.findRename(pc, c, path, blob); ok {
				if h == blob {
					rev, c, path, moved = c.parents[i], pc, from, true
					break
				}
				ppath[i], pblob[i] = from, h
			}
		}
		if moved {
			continue
		}
		for i, pc := range parents {
			if ppath[i] == "" {
				continue
			}
			m, err := g.lineMapOf(pblob[i], blob)
			if err != nil {
				return plumbing.ZeroHash, err
			}
			if old := m.old(line); old >= 0 {
				rev, c, path, blob, line, moved = c.parents[i], pc, ppath[i], pblob[i], int(old), true
				break
			}
		}
		if !moved {
			return rev, nil
		}
	}
}

// lineMapOf maps the lines of the newer blob to the older one, cached per
// pair.
func (g *Git) lineMapOf(old, new plumbing.Hash) (lineMap, error) {
	key := mapKey{old, new}
	if m, ok := g.c.lineMap(key); ok {
		return m, nil
	}
	a, err := g.blob(old)
	if err != nil {
		return lineMap{}, err
	}
	b, err := g.blob(new)
	if err != nil {
		return lineMap{}, err
	}
	m := diffMap(a, b)
	g.c.putLineMap(key, m)
	return m, nil
}

// minRenameScore is the similarity a file must have to the one blamed to
// count as its earlier name: half, as git's default.
const minRenameScore = 0.5

// findRename looks for the file that path was in the parent, when the
// parent lacks path: among the files the commit deleted, one with the same
// content, or else the one most similar to it, if at least half similar.
func (g *Git) findRename(parent, c *commitInfo, path string, blob plumbing.Hash) (string, plumbing.Hash, bool) {
	deleted, err := g.deletedFiles(parent.tree, c.tree)
	if err != nil || len(deleted) == 0 {
		return "", plumbing.ZeroHash, false
	}
	for _, d := range deleted {
		if d.hash == blob {
			return d.path, d.hash, true
		}
	}
	target, err := g.blob(blob)
	if err != nil {
		return "", plumbing.ZeroHash, false
	}
	tspans := spans(target)
	best, bestScore := -1, 0.0
	for i, d := range deleted {
		src, err := g.blob(d.hash)
		if err != nil {
			continue
		}
		big, small := max(len(src), len(target)), min(len(src), len(target))
		if big == 0 || float64(small)/float64(big) < minRenameScore {
			continue
		}
		score := float64(copied(spans(src), tspans)) / float64(big)
		if score >= minRenameScore && score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return "", plumbing.ZeroHash, false
	}
	return deleted[best].path, deleted[best].hash, true
}

type deletedFile struct {
	path string
	hash plumbing.Hash
}

// deletedFiles lists the files of the parent's tree that the commit's tree
// does not have, sorted by path.
func (g *Git) deletedFiles(parentTree, tree plumbing.Hash) ([]deletedFile, error) {
	pt, err := object.GetTree(g.store, parentTree)
	if err != nil {
		return nil, err
	}
	ct, err := object.GetTree(g.store, tree)
	if err != nil {
		return nil, err
	}
	changes, err := object.DiffTree(pt, ct)
	if err != nil {
		return nil, err
	}
	var out []deletedFile
	for _, ch := range changes {
		if ch.To.Name == "" && ch.From.Name != "" && ch.From.TreeEntry.Mode.IsFile() {
			out = append(out, deletedFile{ch.From.Name, ch.From.TreeEntry.Hash})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, nil
}

// spans counts a text's bytes by chunk: pieces that end at a newline or
// after 64 bytes, the unit in which git measures how much of a file
// survives a rename.
func spans(b []byte) map[string]int {
	m := map[string]int{}
	for len(b) > 0 {
		n := min(len(b), 64)
		if i := strings.IndexByte(string(b[:n]), '\n'); i >= 0 {
			n = i + 1
		}
		m[string(b[:n])] += n
		b = b[n:]
	}
	return m
}

// copied is how many bytes of dst are found in src, chunk by chunk.
func copied(src, dst map[string]int) int {
	n := 0
	for k, d := range dst {
		n += min(d, src[k])
	}
	return n
}
