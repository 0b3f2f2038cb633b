package flawless

import (
	"context"
	"errors"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/flawless-go/flawless/report"
)

// Classification is how the frames of one report were judged, and which
// one is blamed.
type Classification struct {
	// Ignored reports that the report was dropped by ignored_exceptions.
	Ignored bool `json:"ignored,omitempty"`
	// ThirdParty is the rule that dropped the report as whitelisted
	// third-party code, if one did.
	ThirdParty string `json:"third_party,omitempty"`
	// Frames are the report's frames, innermost first, with their verdicts.
	Frames []FrameInfo `json:"frames,omitempty"`
	// Blamed indexes the blamed frame in Frames; -1 when no frame is
	// blamable.
	Blamed int `json:"blamed"`
	// Known is the known-error rule of the blamed frame, or nil.
	Known *KnownError `json:"known,omitempty"`
	// Key identifies the error; the zero Key when nothing is blamed.
	Key report.Key `json:"key"`
	// Revision is the commit the frames were read at; Fallback reports that
	// it is the branch head because the report's revision was not found.
	Revision string `json:"revision,omitempty"`
	Fallback bool   `json:"fallback,omitempty"`

	// transient reports that a frame could not be read just now, so the
	// classification must not be cached.
	transient bool
}

// Dropped reports whether the report is dropped: ignored or whitelisted.
func (c *Classification) Dropped() bool { return c.Ignored || c.ThirdParty != "" }

// BlamedFrame returns the blamed frame and true, or false when nothing is
// blamable.
func (c *Classification) BlamedFrame() (FrameInfo, bool) {
	if c.Blamed < 0 || c.Blamed >= len(c.Frames) {
		return FrameInfo{}, false
	}
	return c.Frames[c.Blamed], true
}

// StackPaths returns the distinct repository paths of the blamable frames
// (known errors included), innermost first: the paths whose watchers hear
// about the error.
func (c *Classification) StackPaths() []string {
	var paths []string
	for _, f := range c.Frames {
		if f.Verdict != VerdictBlamable && f.Verdict != VerdictKnownError {
			continue
		}
		dup := false
		for _, p := range paths {
			dup = dup || p == f.Path
		}
		if !dup {
			paths = append(paths, f.Path)
		}
	}
	return paths
}

// Explain describes every frame's verdict on one line each, for logs and
// for "unable to blame" messages.
func (c *Classification) Explain() string {
	var b strings.Builder
	for i, f := range c.Frames {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Path)
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(f.Line))
		b.WriteString(" (")
		b.WriteString(f.Verdict.String())
		if f.Rule != "" {
			b.WriteString(", ")
			b.WriteString(f.Rule)
		}
		b.WriteByte(')')
	}
	return b.String()
}

// classifier holds what classification needs; it is immutable once built.
type classifier struct {
	source     Source
	policy     Policy
	onlyBlame  []*regexp.Regexp
	neverBlame []*regexp.Regexp
}

// classify judges r's frames in the order of SPEC section 4, steps 2 to 8;
// the caller has checked ignored_exceptions (step 1).
func (cl *classifier) classify(ctx context.Context, r *report.Report) *Classification {
	c := &Classification{Blamed: -1}
	c.Frames = make([]FrameInfo, len(r.Frames))
	for i, f := range r.Frames {
		fi := FrameInfo{Function: f.Function, Line: f.Line, Text: f.Text}
		loc, err := cl.source.Locate(ctx, r.Build, f)
		switch {
		case err == nil:
			fi.Path, fi.InRepo = loc.Path, true
			if loc.Text != "" {
				fi.Text = loc.Text
			}
			if c.Revision == "" {
				c.Revision, c.Fallback = loc.Revision, loc.Fallback
			}
		case errors.Is(err, ErrNotInRepo):
			fi.Path, fi.Verdict = modulePath(f.File, f.Function), VerdictNotInRepo
		default:
			fi.Path, fi.Verdict = modulePath(f.File, f.Function), VerdictUnavailable
			c.transient = true
		}
		c.Frames[i] = fi
	}
	// A whitelisted third-party frame anywhere drops the report.
	matches := make([]Match, len(c.Frames))
	for i := range c.Frames {
		fi := &c.Frames[i]
		matches[i] = cl.policy.Match(fi.Path, fi.Function, fi.Text)
		if m := matches[i].ThirdParty; m != "" {
			fi.Verdict, fi.Rule = VerdictThirdParty, m
			c.ThirdParty = m
			return c
		}
	}
	for i := range c.Frames {
		fi, m := &c.Frames[i], matches[i]
		if !fi.InRepo {
			continue
		}
		switch {
		case !matchesAny(cl.onlyBlame, fi.Path, true):
			fi.Verdict = VerdictFiltered
		case m.BuildingBlock != "":
			fi.Verdict, fi.Rule = VerdictBuildingBlock, m.BuildingBlock
		case m.Known != nil:
			fi.Verdict, fi.Rule = VerdictKnownError, m.Known.Rule
		case matchesAny(cl.neverBlame, fi.Text, false):
			fi.Verdict = VerdictNeverBlame
		default:
			fi.Verdict = VerdictBlamable
		}
		if c.Blamed < 0 && (fi.Verdict == VerdictBlamable || fi.Verdict == VerdictKnownError) {
			c.Blamed = i
			c.Known = m.Known
			c.Key = report.NewKey(fi.Path, fi.Function, fi.Text, fi.Line)
		}
	}
	return c
}

// matchesAny reports whether s matches one of the patterns; with no
// patterns it reports empty.
func matchesAny(patterns []*regexp.Regexp, s string, empty bool) bool {
	if len(patterns) == 0 {
		return empty
	}
	for _, p := range patterns {
		if p.MatchString(s) {
			return true
		}
	}
	return false
}

// modulePath returns the path of a file outside the repository as rules
// name it: module-relative without the version for module cache, vendored
// and -trimpath files ("github.com/lib/pq/conn.go"), and relative to
// GOROOT/src for the standard library ("net/http/server.go"), which is
// recognised by the function's package path having no dot in its first
// element.
func modulePath(file, function string) string {
	if i := strings.LastIndex(file, "/pkg/mod/"); i >= 0 {
		file = file[i+len("/pkg/mod/"):]
	} else if i := strings.LastIndex(file, "/vendor/"); i >= 0 {
		file = file[i+len("/vendor/"):]
	} else if pkg := report.Package(function); isStd(pkg) {
		if i := strings.LastIndex(file, "/src/"+pkg+"/"); i >= 0 {
			file = file[i+len("/src/"):]
		}
	}
	if at := strings.IndexByte(file, '@'); at >= 0 {
		if slash := strings.IndexByte(file[at:], '/'); slash >= 0 {
			file = file[:at] + file[at+slash:]
		}
	}
	return file
}

// isStd reports whether an import path looks like the standard library's.
func isStd(pkg string) bool {
	first, _, _ := strings.Cut(pkg, "/")
	return pkg != "" && pkg != "main" && !strings.Contains(first, ".")
}

// ModuleSource is the Source used when Config.Source is nil. It needs no
// repository: a frame is in the repository when its function belongs to the
// report's main module (report.Build.Path), and its repository path is the
// package's directory inside the module joined with the file's name. Frames
// of package main are mapped through the module's directory, learned from
// the other frames, or through the module path for -trimpath builds. The
// text of a line is whatever the report carries.
//
// Dir is the module's directory inside the repository ("" for the root).
type ModuleSource struct {
	Dir string

	root atomic.Pointer[string] // the module's directory on the build machine
}

// Locate implements Source.
func (s *ModuleSource) Locate(_ context.Context, b report.Build, f report.Frame) (Location, error) {
	loc := Location{Text: f.Text, Revision: b.Revision}
	mod := b.Path
	if mod == "" || f.File == "" {
		return loc, ErrNotInRepo
	}
	pkg := strings.TrimSuffix(report.Package(f.Function), "_test")
	base := path.Base(f.File)
	switch {
	case pkg == mod || strings.HasPrefix(pkg, mod+"/"):
		dir := strings.TrimPrefix(strings.TrimPrefix(pkg, mod), "/")
		loc.Path = path.Join(s.Dir, dir, base)
		if fileDir := path.Dir(f.File); path.IsAbs(fileDir) && strings.HasSuffix(fileDir, "/"+dir) || dir == "" {
			root := strings.TrimSuffix(strings.TrimSuffix(fileDir, dir), "/")
			if path.IsAbs(root) {
				s.root.Store(&root)
			}
		}
		return loc, nil
	case strings.HasPrefix(f.File, mod+"/"):
		loc.Path = path.Join(s.Dir, strings.TrimPrefix(f.File, mod+"/"))
		return loc, nil
	case pkg == "main":
		if root := s.root.Load(); root != nil && strings.HasPrefix(f.File, *root+"/") {
			loc.Path = path.Join(s.Dir, strings.TrimPrefix(f.File, *root+"/"))
			return loc, nil
		}
	}
	return loc, ErrNotInRepo
}
