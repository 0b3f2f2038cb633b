package blame

import "bytes"

// This file holds a line diff that picks the same changed lines as git's
// diff does with zero lines of context (what git blame and git diff -U0
// use). A textbook minimal diff often picks other lines when the choice is
// ambiguous (blank lines, a lone "}", a repeated "return err"), and then
// blame names another commit. The steps below follow the behaviour git
// documents and shows: a common tail trimmed in 1 KiB blocks; common
// leading and trailing lines set aside; lines with no partner, and runs of
// lines with too many partners, left out of the search; a Myers search
// that splits at a middle snake and gives up on exactness past a cost
// limit; then each group of changed lines slid to a canonical place, lined
// up with changes on the other side where it can be, or else placed by the
// indent heuristic.

const (
	tailBlock       = 1024 // bytes per block of the common tail trimmed at once
	maxEqualLimit   = 1024 // cap of the "too many partners" limit
	simScanWindow   = 100  // lines examined around a line with many partners
	keepRunFactor   = 4    // how much of a run may be many-partner lines
	snakeLen        = 20   // a run of this many equal lines is a good snake
	heuristicMin    = 256  // edit cost at which the search may take shortcuts
	costMinimum     = 256  // lowest cost limit before the search stops exactly
	heuristicFactor = 4    // how interesting a diagonal must be, per unit of cost

	maxIndent  = 200 // indentation is counted up to this
	maxBlanks  = 20  // blank lines counted around a split
	maxSliding = 100 // how far the indent heuristic looks
	// Weights of the indent heuristic's score of a split.
	startOfFilePenalty         = 1
	endOfFilePenalty           = 21
	totalBlankWeight           = -30
	postBlankWeight            = 6
	relativeIndentPenalty      = -4
	relativeIndentBlankPenalty = 10
	relativeOutdentPenalty     = 24
	relativeOutdentBlankPen    = 17
	relativeDedentPenalty      = 23
	relativeDedentBlankPenalty = 17
	indentWeight               = 60
)

// lineMap maps the lines of a newer text to the lines of an older one, as
// the runs of lines that are unchanged: a handful of runs for a typical
// commit, so that the maps of a file's whole history fit in a small cache.
type lineMap struct {
	runs []lineRun // ascending by newStart
}

// lineRun says that lines [newStart, newStart+n) of the newer text are
// lines [oldStart, oldStart+n) of the older one.
type lineRun struct{ newStart, oldStart, n int32 }

// old returns the line of the older text that line j (0-based) of the
// newer text is unchanged from, or -1 when line j was added or changed.
func (m lineMap) old(j int) int {
	lo, hi := 0, len(m.runs)
	for lo < hi {
		mid := (lo + hi) / 2
		if r := m.runs[mid]; int(r.newStart+r.n) <= j {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(m.runs) {
		if r := m.runs[lo]; int(r.newStart) <= j {
			return int(r.oldStart) + j - int(r.newStart)
		}
	}
	return -1
}

func (m lineMap) size() int { return 12*len(m.runs) + 48 }

// diffMap diffs old against new and returns the line map.
func diffMap(old, new []byte) lineMap {
	a, b := trimCommonTail(old, new)
	da, db := diffTexts(a, b)
	var m lineMap
	add := func(j, i int) {
		if k := len(m.runs) - 1; k >= 0 {
			if r := &m.runs[k]; int(r.newStart+r.n) == j && int(r.oldStart+r.n) == i {
				r.n++
				return
			}
		}
		m.runs = append(m.runs, lineRun{int32(j), int32(i), 1})
	}
	// Unchanged lines correspond in order.
	i := 0
	for j := range db.n() {
		if db.changed(j) {
			continue
		}
		for da.changed(i) {
			i++
		}
		add(j, i)
		i++
	}
	// Lines in the trimmed tail are equal, at a constant offset.
	if tail := countLines(new) - db.n(); tail > 0 {
		m.runs = append(m.runs, lineRun{int32(db.n()), int32(da.n()), int32(tail)})
	}
	return m
}

// trimCommonTail cuts the longest common tail made of whole 1 KiB blocks
// from both texts, then gives back the part of it up to and including its
// first newline, so that both texts still end at a line boundary.
func trimCommonTail(a, b []byte) ([]byte, []byte) {
	smaller := min(len(a), len(b))
	trimmed := 0
	for trimmed+tailBlock <= smaller &&
		bytes.Equal(a[len(a)-trimmed-tailBlock:len(a)-trimmed], b[len(b)-trimmed-tailBlock:len(b)-trimmed]) {
		trimmed += tailBlock
	}
	recovered := 0
	tail := a[len(a)-trimmed:]
	for recovered < trimmed {
		recovered++
		if tail[recovered-1] == '\n' {
			break
		}
	}
	cut := trimmed - recovered
	return a[:len(a)-cut], b[:len(b)-cut]
}

// countLines counts the lines of a text; a last line without a newline
// counts.
func countLines(b []byte) int {
	n := bytes.Count(b, []byte{'\n'})
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// splitLines splits a text into lines, each with its newline.
func splitLines(b []byte) [][]byte {
	lines := make([][]byte, 0, countLines(b))
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			lines = append(lines, b)
			break
		}
		lines = append(lines, b[:i+1])
		b = b[i+1:]
	}
	return lines
}

// side is one text being diffed.
type side struct {
	lines [][]byte
	class []int  // equal lines share a class
	chg   []bool // chg[i+1]: line i is changed; chg[0] and chg[n+1] stay false
}

func (s *side) n() int             { return len(s.lines) }
func (s *side) changed(i int) bool { return s.chg[i+1] }
func (s *side) mark(i int, v bool) { s.chg[i+1] = v }
func (s *side) same(i, j int) bool { return s.class[i] == s.class[j] }
func newSide(lines [][]byte) *side {
	return &side{lines: lines, class: make([]int, len(lines)), chg: make([]bool, len(lines)+2)}
}
func bogoSqrt(n int) int {
	r := 1
	for ; n > 0; n >>= 2 {
		r <<= 1
	}
	return r
}
func absInt(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// diffTexts marks the changed lines of a and b.
func diffTexts(a, b []byte) (*side, *side) {
	sa, sb := newSide(splitLines(a)), newSide(splitLines(b))
	// Classify lines, counting each class's lines on each side.
	ids := make(map[string]int, sa.n()+sb.n())
	var countA, countB []int
	classify := func(s *side, count *[]int) {
		for i, l := range s.lines {
			id, ok := ids[string(l)]
			if !ok {
				id = len(ids)
				ids[string(l)] = id
				countA = append(countA, 0)
				countB = append(countB, 0)
			}
			s.class[i] = id
			(*count)[id]++
		}
	}
	classify(sa, &countA)
	classify(sb, &countB)

	// Set aside the common first and last lines.
	start := 0
	for start < sa.n() && start < sb.n() && sa.class[start] == sb.class[start] {
		start++
	}
	tail := 0
	for tail < min(sa.n(), sb.n())-start && sa.class[sa.n()-1-tail] == sb.class[sb.n()-1-tail] {
		tail++
	}
	endA, endB := sa.n()-1-tail, sb.n()-1-tail

	// Leave out lines that cannot or should not take part in the search.
	ha, ia := prune(sa, start, endA, countB)
	hb, ib := prune(sb, start, endB, countA)

	m := &myers{ha: ha, hb: hb, ia: ia, ib: ib, sa: sa, sb: sb}
	diags := len(ha) + len(hb) + 3
	m.costLimit = max(bogoSqrt(diags), costMinimum)
	m.off = len(hb) + 1
	m.fwd = make([]int, diags+2)
	m.bwd = make([]int, diags+2)
	m.compare(0, len(ha), 0, len(hb), false)

	compact(sa, sb)
	compact(sb, sa)
	return sa, sb
}

// prune returns the classes and line numbers of the lines of s in
// [start, end] that the search should see. A line whose class never occurs
// on the other side is changed for sure. A line whose class occurs on the
// other side many times is left out too, when it sits in a run of lines
// that are mostly without partner.
func prune(s *side, start, end int, other []int) (classes, index []int) {
	limit := min(bogoSqrt(s.n()), maxEqualLimit)
	kind := make([]byte, s.n()) // 0: no partner, 1: some, 2: many
	for i := start; i <= end; i++ {
		switch nm := other[s.class[i]]; {
		case nm == 0:
			kind[i] = 0
		case nm >= limit:
			kind[i] = 2
		default:
			kind[i] = 1
		}
	}
	for i := start; i <= end; i++ {
		if kind[i] == 1 || (kind[i] == 2 && !discardMany(kind, i, start, end)) {
			classes = append(classes, s.class[i])
			index = append(index, i)
		} else {
			s.mark(i, true)
		}
	}
	return classes, index
}

// discardMany decides whether line i, whose class has many partners, is
// left out of the search: only when it sits between runs of lines without
// partner, on both sides, and such lines make up enough of the run.
func discardMany(kind []byte, i, start, end int) bool {
	start = max(start, i-simScanWindow)
	end = min(end, i+simScanWindow)
	// Line i itself counts as a many-partner line of the run before it and
	// of the run after it.
	none, many := 0, 2
	for r := i - 1; r >= start && kind[r] != 1; r-- {
		if kind[r] == 0 {
			none++
		} else {
			many++
		}
	}
	if none == 0 {
		return false
	}
	noneAfter := 0
	for r := i + 1; r <= end && kind[r] != 1; r++ {
		if kind[r] == 0 {
			noneAfter++
		} else {
			many++
		}
	}
	if noneAfter == 0 {
		return false
	}
	return many*keepRunFactor < many+none+noneAfter
}

// myers is the search state over the lines that take part.
type myers struct {
	ha, hb    []int // classes
	ia, ib    []int // their line numbers in sa and sb
	sa, sb    *side
	fwd, bwd  []int // furthest points per diagonal, indexed by diagonal+off
	off       int
	costLimit int
}

// compare marks the changed lines of ha[off1:lim1] against hb[off2:lim2].
func (m *myers) compare(off1, lim1, off2, lim2 int, minimal bool) {
	for off1 < lim1 && off2 < lim2 && m.ha[off1] == m.hb[off2] {
		off1++
		off2++
	}
	for off1 < lim1 && off2 < lim2 && m.ha[lim1-1] == m.hb[lim2-1] {
		lim1--
		lim2--
	}
	switch {
	case off1 == lim1:
		for ; off2 < lim2; off2++ {
			m.sb.mark(m.ib[off2], true)
		}
	case off2 == lim2:
		for ; off1 < lim1; off1++ {
			m.sa.mark(m.ia[off1], true)
		}
	default:
		s := m.split(off1, lim1, off2, lim2, minimal)
		m.compare(off1, s.i1, off2, s.i2, s.minLo)
		m.compare(s.i1, lim1, s.i2, lim2, s.minHi)
	}
}

type splitPoint struct {
	i1, i2       int
	minLo, minHi bool
}

const farAway = int(^uint(0) >> 1)

// split finds where to cut the box [off1,lim1)×[off2,lim2) in two: the
// middle of an optimal path, found by searching from both corners at once;
// or, when the search grows costly and minimal is false, a point on a
// promising long diagonal, or the furthest point reached.
func (m *myers) split(off1, lim1, off2, lim2 int, minimal bool) splitPoint {
	ha, hb, o := m.ha, m.hb, m.off
	fw, bw := m.fwd, m.bwd
	dmin, dmax := off1-lim2, lim1-off2
	fmid, bmid := off1-off2, lim1-lim2
	odd := (fmid-bmid)&1 != 0
	fmin, fmax, bmin, bmax := fmid, fmid, bmid, bmid
	fw[fmid+o] = off1
	bw[bmid+o] = lim1
	for cost := 1; ; cost++ {
		gotSnake := false
		// Widen the forward diagonals by one on each side, or narrow them
		// where the box ends.
		if fmin > dmin {
			fmin--
			fw[fmin-1+o] = -1
		} else {
			fmin++
		}
		if fmax < dmax {
			fmax++
			fw[fmax+1+o] = -1
		} else {
			fmax--
		}
		for d := fmax; d >= fmin; d -= 2 {
			var i1 int
			if fw[d-1+o] >= fw[d+1+o] {
				i1 = fw[d-1+o] + 1
			} else {
				i1 = fw[d+1+o]
			}
			from := i1
			i2 := i1 - d
			for i1 < lim1 && i2 < lim2 && ha[i1] == hb[i2] {
				i1++
				i2++
			}
			if i1-from > snakeLen {
				gotSnake = true
			}
			fw[d+o] = i1
			if odd && bmin <= d && d <= bmax && bw[d+o] <= i1 {
				return splitPoint{i1, i2, true, true}
			}
		}
		if bmin > dmin {
			bmin--
			bw[bmin-1+o] = farAway
		} else {
			bmin++
		}
		if bmax < dmax {
			bmax++
			bw[bmax+1+o] = farAway
		} else {
			bmax--
		}
		for d := bmax; d >= bmin; d -= 2 {
			var i1 int
			if bw[d-1+o] < bw[d+1+o] {
				i1 = bw[d-1+o]
			} else {
				i1 = bw[d+1+o] - 1
			}
			from := i1
			i2 := i1 - d
			for i1 > off1 && i2 > off2 && ha[i1-1] == hb[i2-1] {
				i1--
				i2--
			}
			if from-i1 > snakeLen {
				gotSnake = true
			}
			bw[d+o] = i1
			if !odd && fmin <= d && d <= fmax && i1 <= fw[d+o] {
				return splitPoint{i1, i2, true, true}
			}
		}
		if minimal {
			continue
		}
		// Past the heuristic cost, settle for a diagonal that has come far
		// (measured from its corner, less its distance from the middle
		// diagonal) and ends in a good snake.
		if gotSnake && cost > heuristicMin {
			best, sp := 0, splitPoint{}
			for d := fmax; d >= fmin; d -= 2 {
				i1 := fw[d+o]
				i2 := i1 - d
				v := (i1 - off1) + (i2 - off2) - absInt(d-fmid)
				if v > heuristicFactor*cost && v > best &&
					off1+snakeLen <= i1 && i1 < lim1 && off2+snakeLen <= i2 && i2 < lim2 {
					for k := 1; ha[i1-k] == hb[i2-k]; k++ {
						if k == snakeLen {
							best, sp = v, splitPoint{i1, i2, true, false}
							break
						}
					}
				}
			}
			if best > 0 {
				return sp
			}
			for d := bmax; d >= bmin; d -= 2 {
				i1 := bw[d+o]
				i2 := i1 - d
				v := (lim1 - i1) + (lim2 - i2) - absInt(d-bmid)
				if v > heuristicFactor*cost && v > best &&
					off1 < i1 && i1 <= lim1-snakeLen && off2 < i2 && i2 <= lim2-snakeLen {
					for k := 0; ha[i1+k] == hb[i2+k]; k++ {
						if k == snakeLen-1 {
							best, sp = v, splitPoint{i1, i2, false, true}
							break
						}
					}
				}
			}
			if best > 0 {
				return sp
			}
		}
		// Too costly: take the furthest point either search reached.
		if cost >= m.costLimit {
			fbest, fbest1 := -1, -1
			for d := fmax; d >= fmin; d -= 2 {
				i1 := min(fw[d+o], lim1)
				i2 := i1 - d
				if lim2 < i2 {
					i1, i2 = lim2+d, lim2
				}
				if fbest < i1+i2 {
					fbest, fbest1 = i1+i2, i1
				}
			}
			bbest, bbest1 := farAway, farAway
			for d := bmax; d >= bmin; d -= 2 {
				i1 := max(off1, bw[d+o])
				i2 := i1 - d
				if i2 < off2 {
					i1, i2 = off2+d, off2
				}
				if i1+i2 < bbest {
					bbest, bbest1 = i1+i2, i1
				}
			}
			if (lim1+lim2)-bbest < fbest-(off1+off2) {
				return splitPoint{fbest1, fbest - fbest1, true, false}
			}
			return splitPoint{bbest1, bbest - bbest1, false, true}
		}
	}
}

// group is a run of changed lines [start, end) of a side; an empty group
// (start == end) stands between two unchanged lines.
type group struct{ start, end int }

func firstGroup(s *side) group {
	g := group{}
	for s.changed(g.end) {
		g.end++
	}
	return g
}

func (g *group) next(s *side) bool {
	if g.end == s.n() {
		return false
	}
	g.start = g.end + 1
	g.end = g.start
	for s.changed(g.end) {
		g.end++
	}
	return true
}

func (g *group) prev(s *side) bool {
	if g.start == 0 {
		return false
	}
	g.end = g.start - 1
	g.start = g.end
	for s.changed(g.start - 1) {
		g.start--
	}
	return true
}

// slideDown moves the group one line down, if the line after it equals its
// first line, merging with a group it runs into.
func (g *group) slideDown(s *side) bool {
	if g.end < s.n() && s.same(g.start, g.end) {
		s.mark(g.start, false)
		s.mark(g.end, true)
		g.start++
		g.end++
		for s.changed(g.end) {
			g.end++
		}
		return true
	}
	return false
}

// slideUp moves the group one line up, if the line before it equals its
// last line, merging with a group it runs into.
func (g *group) slideUp(s *side) bool {
	if g.start > 0 && s.same(g.start-1, g.end-1) {
		g.start--
		s.mark(g.start, true)
		g.end--
		s.mark(g.end, false)
		for s.changed(g.start - 1) {
			g.start--
		}
		return true
	}
	return false
}

// compact slides each group of changed lines of s to a canonical place,
// keeping o (the other side) in step: as far down as it goes, then back up
// to line up with a change on the other side if it passed one, or else to
// the place the indent heuristic scores best.
func compact(s, o *side) {
	g, og := firstGroup(s), firstGroup(o)
	for {
		if g.end != g.start {
			var earliestEnd, endMatchingOther, size int
			for {
				size = g.end - g.start
				endMatchingOther = -1
				for g.slideUp(s) {
					og.prev(o)
				}
				earliestEnd = g.end
				if og.end > og.start {
					endMatchingOther = g.end
				}
				for g.slideDown(s) {
					og.next(o)
					if og.end > og.start {
						endMatchingOther = g.end
					}
				}
				if size == g.end-g.start {
					break
				}
			}
			switch {
			case g.end == earliestEnd:
				// It could not move.
			case endMatchingOther != -1:
				for og.end == og.start && g.slideUp(s) {
					og.prev(o)
				}
			default:
				shift := max(earliestEnd, g.end-size-1, g.end-maxSliding)
				bestShift := -1
				var best score
				for ; shift <= g.end; shift++ {
					var sc score
					sc.add(measure(s, shift))
					sc.add(measure(s, shift-size))
					if bestShift == -1 || sc.cmp(best) <= 0 {
						best, bestShift = sc, shift
					}
				}
				for g.end > bestShift && g.slideUp(s) {
					og.prev(o)
				}
			}
		}
		if !g.next(s) || !og.next(o) {
			return
		}
	}
}

// split describes the neighbourhood of a place between two lines.
type split struct {
	endOfFile  bool
	indent     int // of the line after the split; -1 if blank
	preBlank   int // blank lines just before the split
	preIndent  int // indent of the first non-blank line before; -1 if none
	postBlank  int // blank lines after the line after the split
	postIndent int // indent of the first non-blank line after that; -1 if none
}

// indentOf returns a line's indentation (tabs to multiples of 8), or -1
// for a line of white space only.
func indentOf(line []byte) int {
	n := 0
	for _, c := range line {
		switch c {
		case ' ':
			n++
		case '\t':
			n += 8 - n%8
		case '\n', '\r':
			// other white space adds nothing (\v and \f are not white
			// space to git)
		default:
			return n
		}
		if n >= maxIndent {
			return maxIndent
		}
	}
	return -1
}

func measure(s *side, at int) split {
	m := split{indent: -1, preIndent: -1, postIndent: -1}
	if at >= s.n() {
		m.endOfFile = true
	} else {
		m.indent = indentOf(s.lines[at])
	}
	for i := at - 1; i >= 0; i-- {
		m.preIndent = indentOf(s.lines[i])
		if m.preIndent != -1 {
			break
		}
		m.preBlank++
		if m.preBlank == maxBlanks {
			m.preIndent = 0
			break
		}
	}
	for i := at + 1; i < s.n(); i++ {
		m.postIndent = indentOf(s.lines[i])
		if m.postIndent != -1 {
			break
		}
		m.postBlank++
		if m.postBlank == maxBlanks {
			m.postIndent = 0
			break
		}
	}
	return m
}

// score is the indent heuristic's badness of a placement: lower is better.
type score struct{ effectiveIndent, penalty int }

func (sc *score) add(m split) {
	if m.preIndent == -1 && m.preBlank == 0 {
		sc.penalty += startOfFilePenalty
	}
	if m.endOfFile {
		sc.penalty += endOfFilePenalty
	}
	postBlank := 0
	if m.indent == -1 {
		postBlank = 1 + m.postBlank
	}
	totalBlank := m.preBlank + postBlank
	sc.penalty += totalBlankWeight*totalBlank + postBlankWeight*postBlank
	indent := m.indent
	if indent == -1 {
		indent = m.postIndent
	}
	blanks := totalBlank != 0
	sc.effectiveIndent += indent
	switch {
	case indent == -1 || m.preIndent == -1 || indent == m.preIndent:
	case indent > m.preIndent:
		sc.penalty += pick(blanks, relativeIndentBlankPenalty, relativeIndentPenalty)
	case m.postIndent != -1 && m.postIndent > indent:
		// Less indented than before, more after: likely a block's start.
		sc.penalty += pick(blanks, relativeOutdentBlankPen, relativeOutdentPenalty)
	default:
		// Likely the end of a block.
		sc.penalty += pick(blanks, relativeDedentBlankPenalty, relativeDedentPenalty)
	}
}

func pick(cond bool, a, b int) int {
	if cond {
		return a
	}
	return b
}

func (sc score) cmp(o score) int {
	c := 0
	if sc.effectiveIndent > o.effectiveIndent {
		c = 1
	} else if sc.effectiveIndent < o.effectiveIndent {
		c = -1
	}
	return indentWeight*c + sc.penalty - o.penalty
}
