package blame

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func needGit(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: the comparison with git's own answers needs it (CI installs it)")
	}
}

var hunkHeader = regexp.MustCompile(`(?m)^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@`)

// gitChanged returns the changed lines of old and new (0-based) according
// to git diff -U0.
func gitChanged(t *testing.T, dir string, old, new []byte) (map[int]bool, map[int]bool) {
	t.Helper()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, old, 0o644)
	os.WriteFile(b, new, 0o644)
	cmd := exec.Command("git", "-c", "core.quotepath=off", "diff", "--no-index", "--no-color", "-U0", "a", "b")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("git diff: %v", err)
		}
	}
	ca, cb := map[int]bool{}, map[int]bool{}
	for _, m := range hunkHeader.FindAllStringSubmatch(string(out), -1) {
		atoi := func(s string, def int) int {
			if s == "" {
				return def
			}
			n, _ := strconv.Atoi(s)
			return n
		}
		s1, c1, s2, c2 := atoi(m[1], 0), atoi(m[2], 1), atoi(m[3], 0), atoi(m[4], 1)
		for i := range c1 {
			ca[s1-1+i] = true
		}
		for i := range c2 {
			cb[s2-1+i] = true
		}
	}
	return ca, cb
}

func ourChanged(old, new []byte) (map[int]bool, map[int]bool) {
	a, b := trimCommonTail(old, new)
	sa, sb := diffTexts(a, b)
	ca, cb := map[int]bool{}, map[int]bool{}
	for i := range sa.n() {
		if sa.changed(i) {
			ca[i] = true
		}
	}
	for i := range sb.n() {
		if sb.changed(i) {
			cb[i] = true
		}
	}
	return ca, cb
}

// vocabulary of lines that make diffs ambiguous.
var vocabulary = []string{
	"", "", "", "}", "}", "\t}", "\t\t}", "\treturn err", "\t\treturn err", "\tif err != nil {", "\t\tif err != nil {",
	"func a() {", "func b() {", "\tx := 1", "\ty := 2", "\t// comment", "\tdefer f.Close()", ")", "\t\tcontinue",
	"import (", "\t\"fmt\"", "\tfoo()", "\tbar()", "else {", "  two spaces", "    four spaces", "\t\t\tdeep",
}

func randomText(r *rand.Rand, n int) []string {
	lines := make([]string, n)
	for i := range lines {
		if r.IntN(6) == 0 {
			lines[i] = fmt.Sprintf("\tunique%d()", r.IntN(1000))
		} else {
			lines[i] = vocabulary[r.IntN(len(vocabulary))]
		}
	}
	return lines
}

func mutate(r *rand.Rand, lines []string) []string {
	out := append([]string(nil), lines...)
	for range 1 + r.IntN(6) {
		pos := r.IntN(len(out) + 1)
		switch r.IntN(4) {
		case 0: // insert a block
			block := randomText(r, 1+r.IntN(6))
			out = append(out[:pos], append(block, out[pos:]...)...)
		case 1: // delete a block
			if pos < len(out) {
				end := min(len(out), pos+1+r.IntN(5))
				out = append(out[:pos], out[end:]...)
			}
		case 2: // change a line
			if pos < len(out) {
				out[pos] = vocabulary[r.IntN(len(vocabulary))]
			}
		case 3: // duplicate a run, like a copy-pasted function
			if pos < len(out) {
				end := min(len(out), pos+1+r.IntN(8))
				out = append(out[:end], append(append([]string(nil), out[pos:end]...), out[end:]...)...)
			}
		}
	}
	return out
}

func join(lines []string, finalNewline bool) []byte {
	s := strings.Join(lines, "\n")
	if finalNewline && len(lines) > 0 {
		s += "\n"
	}
	return []byte(s)
}

// TestDiffAgreesWithGit diffs random texts full of ambiguous lines, small
// and large (past the 1 KiB tail blocks and the search's cost limits), and
// checks that the changed lines are exactly git diff -U0's.
func TestDiffAgreesWithGit(t *testing.T) {
	needGit(t)
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	cases := 400
	if testing.Short() {
		cases = 60
	}
	for c := range cases {
		n := 5 + r.IntN(60)
		if c%10 == 0 {
			n = 400 + r.IntN(1500)
		}
		old := randomText(r, n)
		new := mutate(r, old)
		if c%25 == 0 {
			new = randomText(r, n) // unrelated texts: the costly search
		}
		ob, nb := join(old, c%7 != 0), join(new, c%5 != 0)
		wa, wb := gitChanged(t, dir, ob, nb)
		ga, gb := ourChanged(ob, nb)
		if fmt.Sprint(wa) != fmt.Sprint(ga) || fmt.Sprint(wb) != fmt.Sprint(gb) {
			t.Fatalf("case %d (%d→%d lines): changed lines differ from git's\nold changed: git %v\n             ours %v\nnew changed: git %v\n             ours %v",
				c, len(old), len(new), keys(wa), keys(ga), keys(wb), keys(gb))
		}
	}
}

func keys(m map[int]bool) []int {
	var ks []int
	for k := range len(m) * 1000 {
		if m[k] {
			ks = append(ks, k)
		}
		if len(ks) == len(m) {
			break
		}
	}
	return ks
}

func TestDiffMapping(t *testing.T) {
	old := []byte("a\nb\nc\nd\n")
	new := []byte("a\nX\nc\nd\ne\n")
	m := diffMap(old, new)
	var got []int
	for j := range 6 {
		got = append(got, m.old(j))
	}
	if want := []int{0, -1, 2, 3, -1, -1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("mapping = %v, want %v", got, want)
	}
	if len(m.runs) != 2 {
		t.Errorf("runs = %v, want two", m.runs)
	}
}

func TestTrimCommonTailKeepsWholeLines(t *testing.T) {
	tail := bytes.Repeat([]byte("same line of text\n"), 200) // 3.6 KiB
	a := append([]byte("first\nold\n"), tail...)
	b := append([]byte("first\nnew one\n"), tail...)
	ta, tb := trimCommonTail(a, b)
	if len(a)-len(ta) != len(b)-len(tb) || len(a)-len(ta) < 2048 {
		t.Errorf("trimmed %d and %d bytes", len(a)-len(ta), len(b)-len(tb))
	}
	if ta[len(ta)-1] != '\n' || tb[len(tb)-1] != '\n' {
		t.Error("a trimmed text does not end at a line boundary")
	}
	m := diffMap(a, b)
	last := countLines(b) - 1
	if m.old(1) != -1 || m.old(0) != 0 || m.old(last) != countLines(a)-1 {
		t.Errorf("mapping across the trimmed tail is off: first %d, changed %d, last %d", m.old(0), m.old(1), m.old(last))
	}
}
