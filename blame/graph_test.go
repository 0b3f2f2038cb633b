package blame

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestMurmur3(t *testing.T) {
	tests := []struct {
		seed uint32
		s    string
		want uint32
	}{
		{0, "", 0},
		{0, "The quick brown fox jumps over the lazy dog", 0x2e4ff723},
		{1, "", 0x514e28b7},
	}
	for _, tt := range tests {
		if got := murmur3(tt.seed, tt.s, false); got != tt.want {
			t.Errorf("murmur3(%#x, %q) = %#x, want %#x", tt.seed, tt.s, got, tt.want)
		}
	}
	if murmur3(0, "ünï", true) == murmur3(0, "ünï", false) {
		t.Error("signed and unsigned bytes hash alike for non-ASCII text")
	}
	if murmur3(0, "abc", true) != murmur3(0, "abc", false) {
		t.Error("signed and unsigned bytes differ for ASCII text")
	}
}

// TestBloomFiltersWithNonASCIIPaths blames a file whose name is not ASCII
// through the Bloom filters git wrote, against git's own answers.
func TestBloomFiltersWithNonASCIIPaths(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	repo := newTestRepo(t)
	repo.git("config", "core.quotepath", "off")
	const name = "pkg/dépôt/ünïcödé.go"
	repo.write(name, strings.Join(randomText(rng, 40), "\n")+"\n")
	repo.write("other.go", "package other\n")
	repo.commit(authors[0], "start")
	for i := range 16 {
		if i%3 == 0 {
			repo.write(name, editLines(rng, repo.read(name)))
		} else {
			repo.write("other.go", fmt.Sprintf("package other\n// %d\n", i))
		}
		repo.commit(authors[i%5], "edit")
	}
	repo.git("commit-graph", "write", "--reachable", "--changed-paths")
	g := openTest(t, repo.dir)
	checkAgainstGit(t, g, repo.dir, []string{name})
	if g.bloomSkips == 0 {
		t.Error("no commit was passed over on a Bloom filter's word")
	}
}
