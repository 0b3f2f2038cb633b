package blame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
)

// commitGraph reads git's commit-graph files (objects/info/commit-graph, or
// a chain under objects/info/commit-graphs/): each commit's tree and
// parents without decoding the commit, and the changed-path Bloom filters
// that tell, without reading a tree, that a commit did not change a path
// against its first parent. The layout is the one git documents in
// gitformat-commit-graph.
type commitGraph struct {
	layers []*graphLayer // base first; positions run across layers in order
}

type graphLayer struct {
	offset  uint32 // global position of this layer's first commit
	fanout  []byte // 256 × 4
	oids    []byte // n × 20
	data    []byte // n × 36: tree, parent 1, parent 2, generation and time
	edges   []byte // extra parents of octopus merges
	bidx    []byte // n × 4: end offset of each commit's filter
	bdat    []byte // filters, after a 12-byte header
	hashes  uint32 // bloom: hash functions per key
	version uint32 // bloom: 1 (git's first murmur3, with signed bytes) or 2
}

const (
	graphNoParent   = 0x70000000
	graphEdgeMarker = 0x80000000
	graphEdgeLast   = 0x80000000
	graphMask       = 0x7fffffff
)

// openCommitGraph loads the commit-graph of the repository whose objects
// are in gitDir/objects; nil when there is none or it cannot be read.
func openCommitGraph(gitDir string) *commitGraph {
	info := filepath.Join(gitDir, "objects", "info")
	var files []string
	if chain, err := os.ReadFile(filepath.Join(info, "commit-graphs", "commit-graph-chain")); err == nil {
		for _, h := range strings.Fields(string(chain)) {
			files = append(files, filepath.Join(info, "commit-graphs", "graph-"+h+".graph"))
		}
	} else if _, err := os.Stat(filepath.Join(info, "commit-graph")); err == nil {
		files = []string{filepath.Join(info, "commit-graph")}
	}
	if len(files) == 0 {
		return nil
	}
	g := &commitGraph{}
	var offset uint32
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil
		}
		l, err := parseGraphLayer(data)
		if err != nil {
			return nil
		}
		l.offset = offset
		offset += uint32(len(l.oids) / 20)
		g.layers = append(g.layers, l)
	}
	return g
}

var errBadGraph = errors.New("blame: unreadable commit-graph")

func parseGraphLayer(b []byte) (*graphLayer, error) {
	if len(b) < 8 || string(b[:4]) != "CGPH" || b[4] != 1 || b[5] != 1 {
		return nil, errBadGraph
	}
	chunks := int(b[6])
	if len(b) < 8+(chunks+1)*12 {
		return nil, errBadGraph
	}
	l := &graphLayer{}
	for i := range chunks {
		e := b[8+i*12:]
		id := string(e[:4])
		start := binary.BigEndian.Uint64(e[4:12])
		end := binary.BigEndian.Uint64(e[16:24])
		if start > end || end > uint64(len(b)) {
			return nil, errBadGraph
		}
		c := b[start:end]
		switch id {
		case "OIDF":
			l.fanout = c
		case "OIDL":
			l.oids = c
		case "CDAT":
			l.data = c
		case "EDGE":
			l.edges = c
		case "BIDX":
			l.bidx = c
		case "BDAT":
			l.bdat = c
		}
	}
	n := len(l.oids) / 20
	if len(l.fanout) != 1024 || len(l.data) != n*36 {
		return nil, errBadGraph
	}
	if len(l.bidx) != n*4 || len(l.bdat) < 12 {
		l.bidx, l.bdat = nil, nil
	} else {
		l.version = binary.BigEndian.Uint32(l.bdat[0:4])
		l.hashes = binary.BigEndian.Uint32(l.bdat[4:8])
		if l.version != 1 && l.version != 2 || l.hashes == 0 {
			l.bidx, l.bdat = nil, nil
		}
	}
	return l, nil
}

// find returns the layer and the local position of a commit.
func (g *commitGraph) find(h plumbing.Hash) (*graphLayer, int, bool) {
	for _, l := range g.layers {
		lo := 0
		if h[0] > 0 {
			lo = int(binary.BigEndian.Uint32(l.fanout[(int(h[0])-1)*4:]))
		}
		hi := int(binary.BigEndian.Uint32(l.fanout[int(h[0])*4:]))
		for lo < hi {
			mid := (lo + hi) / 2
			switch bytes.Compare(l.oids[mid*20:mid*20+20], h[:]) {
			case 0:
				return l, mid, true
			case -1:
				lo = mid + 1
			default:
				hi = mid
			}
		}
	}
	return nil, 0, false
}

// oidAt returns the commit at a global position.
func (g *commitGraph) oidAt(pos uint32) (plumbing.Hash, bool) {
	for _, l := range g.layers {
		n := uint32(len(l.oids) / 20)
		if pos >= l.offset && pos < l.offset+n {
			var h plumbing.Hash
			i := pos - l.offset
			copy(h[:], l.oids[i*20:i*20+20])
			return h, true
		}
	}
	return plumbing.ZeroHash, false
}

// commit returns a commit's tree and parents.
func (g *commitGraph) commit(h plumbing.Hash) (*commitInfo, bool) {
	l, i, ok := g.find(h)
	if !ok {
		return nil, false
	}
	d := l.data[i*36:]
	info := &commitInfo{}
	copy(info.tree[:], d[:20])
	p1 := binary.BigEndian.Uint32(d[20:24])
	p2 := binary.BigEndian.Uint32(d[24:28])
	add := func(pos uint32) bool {
		ph, ok := g.oidAt(pos)
		if ok {
			info.parents = append(info.parents, ph)
		}
		return ok
	}
	if p1 != graphNoParent && !add(p1) {
		return nil, false
	}
	switch {
	case p2 == graphNoParent:
	case p2&graphEdgeMarker == 0:
		if !add(p2) {
			return nil, false
		}
	default:
		for e := p2 & graphMask; int(e*4+4) <= len(l.edges); e++ {
			v := binary.BigEndian.Uint32(l.edges[e*4:])
			if !add(v & graphMask) {
				return nil, false
			}
			if v&graphEdgeLast != 0 {
				break
			}
		}
	}
	return info, true
}

// unchanged reports whether the Bloom filter of commit h says for sure
// that h did not change path (nor, so, any directory above it) against
// its first parent. False means "maybe changed" or "no filter".
func (g *commitGraph) unchanged(h plumbing.Hash, path string) bool {
	l, i, ok := g.find(h)
	if !ok || l.bdat == nil {
		return false
	}
	start := uint32(0)
	if i > 0 {
		start = binary.BigEndian.Uint32(l.bidx[(i-1)*4:])
	}
	end := binary.BigEndian.Uint32(l.bidx[i*4:])
	if start >= end || 12+int(end) > len(l.bdat) {
		return false // an empty filter says nothing
	}
	filter := l.bdat[12+start : 12+end]
	for p := path; p != ""; {
		if !filterMayContain(filter, l.hashes, l.version, p) {
			return true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return false
}

func filterMayContain(filter []byte, k, version uint32, key string) bool {
	h0 := murmur3(0x293ae76f, key, version == 1)
	h1 := murmur3(0x7e646e2c, key, version == 1)
	nbits := uint64(len(filter)) * 8
	for i := range k {
		pos := uint64(h0+i*h1) % nbits
		if filter[pos/8]&(1<<(pos%8)) == 0 {
			return false
		}
	}
	return true
}

// murmur3 is the 32-bit MurmurHash3 of s with the given seed. With
// signedBytes, bytes of 0x80 and above are sign-extended first, as the
// first version of git's changed-path filters did.
func murmur3(seed uint32, s string, signedBytes bool) uint32 {
	const c1, c2 = 0xcc9e2d51, 0x1b873593
	byteAt := func(i int) uint32 {
		if signedBytes {
			return uint32(int32(int8(s[i])))
		}
		return uint32(s[i])
	}
	h := seed
	n := len(s) / 4
	for i := range n {
		k := byteAt(4*i) | byteAt(4*i+1)<<8 | byteAt(4*i+2)<<16 | byteAt(4*i+3)<<24
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
		h = bits.RotateLeft32(h, 13)
		h = h*5 + 0xe6546b64
	}
	var k uint32
	tail := 4 * n
	switch len(s) & 3 {
	case 3:
		k ^= byteAt(tail+2) << 16
		fallthrough
	case 2:
		k ^= byteAt(tail+1) << 8
		fallthrough
	case 1:
		k ^= byteAt(tail)
		k *= c1
		k = bits.RotateLeft32(k, 15)
		k *= c2
		h ^= k
	}
	h ^= uint32(len(s))
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}
