package flawless

import (
	"context"
	"errors"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/flawless-go/flawless/report"
)

// Errors callers branch on.
var (
	// ErrNotInRepo is returned by a Source for a frame whose file is not
	// part of the repository: the standard library, a third-party module,
	// generated code.
	ErrNotInRepo = errors.New("flawless: file not in the repository")
	// ErrNotFound is returned by a Store for a key it does not hold.
	ErrNotFound = errors.New("flawless: no such entry")
	// ErrPermanent marks a notification failure that retrying cannot fix
	// (an SMTP 5xx answer). A Notifier wraps it; the engine then gives up
	// on the notification and tells the default contact.
	ErrPermanent = errors.New("flawless: permanent delivery failure")
	// ErrUnavailable marks a failure that is expected to pass (a Blamer
	// whose queue is full, a repository being updated). The engine leaves
	// the work pending and tries again later instead of giving up.
	ErrUnavailable = errors.New("flawless: temporarily unavailable")
	// ErrClosed is returned by Engine.Report after Close.
	ErrClosed = errors.New("flawless: engine closed")
)

// DefaultNeverBlameLines is what Config.NeverBlameLines means when nil: a
// bare re-raise of a recovered value, such as panic(r) or panic(err).
var DefaultNeverBlameLines = []*regexp.Regexp{
	regexp.MustCompile(`^\s*panic\(\s*[\pL_][\pL\pN_]*\s*\)\s*;?\s*$`),
}

// Location is where a frame is in the repository.
type Location struct {
	// Path is the file's path inside the repository, slash-separated.
	Path string
	// Text is the line's source text at Revision; empty when unknown.
	Text string
	// Revision is the commit Text was read at; empty when unknown.
	Revision string
	// Fallback reports that the report's own revision was not found in the
	// repository, so Revision is the configured branch head instead.
	Fallback bool
}

// Source maps the frames of a report into the repository.
//
// Locate is called concurrently. It returns an error wrapping ErrNotInRepo
// for a frame whose file is not part of the repository; any other error is
// taken as a passing failure and the frame is not blamed this time.
type Source interface {
	Locate(ctx context.Context, b report.Build, f report.Frame) (Location, error)
}

// Author is the answer of blame: who last changed a line, and when.
type Author struct {
	Name  string    `json:"name,omitempty"`
	Email string    `json:"email,omitempty"`
	Time  time.Time `json:"time,omitzero"`
	// Commit is the commit that last changed the line.
	Commit string `json:"commit,omitempty"`
}

// Blamer finds who last changed a line.
//
// Blame is called concurrently, off the path of Engine.Report, at most
// Config.Workers at a time. An error means nobody can be blamed for the
// line; the error is still counted and the default contact is told.
type Blamer interface {
	Blame(ctx context.Context, loc Location, line int) (Author, error)
}

// BlamerFunc adapts a function to the Blamer interface.
type BlamerFunc func(ctx context.Context, loc Location, line int) (Author, error)

// Blame calls f.
func (f BlamerFunc) Blame(ctx context.Context, loc Location, line int) (Author, error) {
	return f(ctx, loc, line)
}

// Notifier delivers notices.
//
// Notify is called concurrently, off the path of Engine.Report. It returns
// nil only once the notice has been accepted for delivery (for email: the
// SMTP server accepted the message). A failure is retried with backoff
// unless it wraps ErrPermanent.
type Notifier interface {
	Notify(ctx context.Context, n *Notice) error
}

// NotifierFunc adapts a function to the Notifier interface.
type NotifierFunc func(ctx context.Context, n *Notice) error

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, n *Notice) error { return f(ctx, n) }

// Policy is what the rule files say: which reports to drop, which frames
// are building blocks or known errors, and who hears about an error.
// Package rules implements it from TOML files.
//
// Its methods are called concurrently and must not block.
type Policy interface {
	// Ignore reports whether r is dropped because of its error type or
	// message (ignored_exceptions).
	Ignore(r *report.Report) bool
	// Match says which rules match a frame. path is the frame's repository
	// path (or, for a frame outside the repository, its module-relative
	// path), function its fully qualified name, text its line text.
	Match(path, function, text string) Match
	// Route turns the email address blame found for the line into the
	// developer to notify (remapping, domain, disownership), and adds the
	// watchers of the blamed path and of the paths of the stack's other
	// blamable frames.
	Route(author, blamed string, stack []string) Route
}

// Match is what the rules say about one frame.
type Match struct {
	// ThirdParty is where the third-party whitelist entry that matched is
	// ("third_party_whitelist.toml:4"); empty when none did.
	ThirdParty string
	// BuildingBlock is where the building-block entry that matched is.
	BuildingBlock string
	// Known is the first known-error entry that matched, or nil.
	Known *KnownError
}

// KnownError is a known-error rule: an error that is expected, with its
// own alert thresholds, extra recipients and email header.
type KnownError struct {
	// Rule is where the rule is written ("known_errors.toml:12").
	Rule string `json:"rule,omitempty"`
	// Min sends the first email once the week's count reaches it (0: unset).
	Min int `json:"min,omitempty"`
	// Max stops all emails once the week's count exceeds it (nil: unset;
	// 0 means never email).
	Max *int `json:"max,omitempty"`
	// Every sends an email each time the count passes a multiple of it
	// (0: unset).
	Every int `json:"every,omitempty"`
	// Recipients are added to every email about the error.
	Recipients []string `json:"recipients,omitempty"`
	// Header is put at the top of the email.
	Header string `json:"header,omitempty"`
}

// Silenced reports whether the rule never alerts: no threshold is set.
func (k *KnownError) Silenced() bool { return k.Min == 0 && k.Max == nil && k.Every == 0 }

// Route is who hears about an error, and why.
type Route struct {
	// Developer is the address of the developer to notify; empty when the
	// author's address could not be turned into a valid one.
	Developer string
	// Watchers are the addresses of the people watching the files involved.
	Watchers []string
	// Notes say which rules applied ("remapped by email_remapping.toml:3").
	Notes []string
}

// Verdict is what classification decided about one frame.
type Verdict uint8

// Verdicts, in the order classification tries them.
const (
	VerdictBlamable      Verdict = iota // may be blamed; the innermost such frame is
	VerdictNotInRepo                    // standard library, third-party module, unmapped file
	VerdictFiltered                     // repository path not matching only_blame_filepaths_matching
	VerdictBuildingBlock                // a building block: blame moves to the caller
	VerdictKnownError                   // a known error: blamable, with its own alert rules
	VerdictNeverBlame                   // the line matches never_blame_lines_matching
	VerdictThirdParty                   // whitelisted third-party code: the report is dropped
	VerdictUnavailable                  // the repository could not be read just now
)

var verdictNames = [...]string{
	VerdictBlamable:      "blamable",
	VerdictNotInRepo:     "not in the repository",
	VerdictFiltered:      "not matching only_blame_filepaths_matching",
	VerdictBuildingBlock: "building block",
	VerdictKnownError:    "known error",
	VerdictNeverBlame:    "line matches never_blame_lines_matching",
	VerdictThirdParty:    "third-party whitelist",
	VerdictUnavailable:   "repository unavailable",
}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "unknown verdict"
}

// MarshalText writes the verdict's name.
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText reads a verdict's name.
func (v *Verdict) UnmarshalText(b []byte) error {
	for i, name := range verdictNames {
		if name == string(b) {
			*v = Verdict(i)
			return nil
		}
	}
	return errors.New("flawless: unknown verdict " + string(b))
}

// FrameInfo is one frame of a report as classification saw it.
type FrameInfo struct {
	// Path is the repository path, or for a frame outside the repository
	// its module-relative path ("net/http/server.go").
	Path     string  `json:"path"`
	Function string  `json:"function"`
	Line     int     `json:"line"`
	Text     string  `json:"text,omitempty"`
	InRepo   bool    `json:"in_repo,omitempty"`
	Verdict  Verdict `json:"verdict"`
	// Rule is where the rule that decided the verdict is, if one did.
	Rule string `json:"rule,omitempty"`
}

// Occurrence is what Engine.Report hands a Store for one report.
type Occurrence struct {
	// Report is the report; a Store may keep it as the latest occurrence.
	Report *report.Report
	// Count is how many occurrences it stands for (at least 1).
	Count int
	// Time is when it was received.
	Time time.Time
	// Classification is how the report's frames were classified. It is
	// shared and must not be modified.
	Classification *Classification
}

// Entry is one error in one week: its counts, its latest occurrence, its
// blame and the state of its notifications.
type Entry struct {
	Key  report.Key `json:"key"`
	Week time.Time  `json:"week"`

	// Count is the number of occurrences this week.
	Count     int       `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Last is the latest occurrence; Classification is how it was
	// classified (Classification.Blamed indexes the blamed frame).
	Last           *report.Report  `json:"last,omitempty"`
	Classification *Classification `json:"classification,omitempty"`
	// Threshold is the latest report's threshold override (0: none).
	Threshold int `json:"threshold,omitempty"`

	// Known reports that the blamed frame matched a known-error rule.
	Known bool `json:"known,omitempty"`
	// Unblamable marks the week's entry that counts reports with no
	// blamable frame.
	Unblamable bool `json:"unblamable,omitempty"`

	// Blamed reports that blame has run (successfully or not).
	Blamed bool `json:"blamed,omitempty"`
	// Author is the blame answer; zero when blame failed.
	Author Author `json:"author,omitzero"`
	// BlameError says why blame failed, if it did.
	BlameError string `json:"blame_error,omitempty"`
	// Developer is who the error is assigned to: the routed author address,
	// or "unknown".
	Developer string `json:"developer,omitempty"`
	// Notes say which rules routed the error.
	Notes []string `json:"notes,omitempty"`

	// Notified counts the notifications delivered for this entry.
	Notified int `json:"notified,omitempty"`
	// NoticeClaimed is when the latest notification was claimed, and
	// ClaimedAtCount the count at that time.
	NoticeClaimed  time.Time `json:"notice_claimed,omitzero"`
	ClaimedAtCount int       `json:"claimed_at_count,omitempty"`
	// Pending is the notification waiting to be delivered, if any.
	Pending *Pending `json:"pending,omitempty"`
	// Failed counts notifications given up on.
	Failed int `json:"failed,omitempty"`
	// ProblemReported reports that the default contact was told about a
	// problem with this entry (failed blame, unable to blame).
	ProblemReported bool `json:"problem_reported,omitempty"`
}

// Clone returns a copy of e that shares no mutable state with it (the
// pending notification and its recipients are copied; the latest report
// and classification are shared, as they are never modified).
func (e *Entry) Clone() Entry {
	c := *e
	if e.Pending != nil {
		p := *e.Pending
		p.To = append([]string(nil), p.To...)
		c.Pending = &p
	}
	return c
}

// ValidRecipients returns the valid addresses among addrs, without
// duplicates (compared without regard to case) and in their order, and the
// invalid ones. An address with a line break is invalid.
func ValidRecipients(addrs []string) (valid, invalid []string) {
	seen := map[string]bool{}
	for _, a := range addrs {
		p, err := mail.ParseAddress(a)
		if err != nil || strings.ContainsAny(a, "\r\n") {
			invalid = append(invalid, a)
			continue
		}
		k := strings.ToLower(p.Address)
		if !seen[k] {
			seen[k] = true
			valid = append(valid, p.Address)
		}
	}
	return valid, invalid
}

// Pending is a notification that has been decided but not yet delivered.
type Pending struct {
	To       []string  `json:"to"`
	Created  time.Time `json:"created"`
	Attempts int       `json:"attempts,omitempty"`
	// Next is when the next attempt is due.
	Next time.Time `json:"next"`
	// LastError is why the latest attempt failed.
	LastError string `json:"last_error,omitempty"`
}

// Store keeps the weekly counts and the state of blame and notification.
//
// Every method is safe for concurrent use, also by several processes
// sharing one store. Add and Update are atomic: Update's fn sees the entry
// as it is and its change is applied entirely or not at all (a store may
// call fn more than once, so fn must not have side effects). Entries that
// are returned are copies; changing them does not change the store.
//
// Package storetest checks an implementation against this contract.
type Store interface {
	// Add counts o under key in the week's partition, creating the entry
	// when it is absent, keeps o as the latest occurrence, and returns the
	// entry after the change.
	Add(ctx context.Context, week time.Time, key report.Key, o Occurrence) (Entry, error)
	// Get returns the entry, or an error wrapping ErrNotFound.
	Get(ctx context.Context, week time.Time, key report.Key) (Entry, error)
	// Update applies fn to the entry atomically. fn returns false to leave
	// it unchanged. Update returns the entry after the change, or an error
	// wrapping ErrNotFound.
	Update(ctx context.Context, week time.Time, key report.Key, fn func(*Entry) bool) (Entry, error)
	// Entries returns every entry of the week.
	Entries(ctx context.Context, week time.Time) ([]Entry, error)
	// Pending returns the entries of any week that still have work to do:
	// not yet blamed, or with a notification pending.
	Pending(ctx context.Context) ([]Entry, error)
}

// Weeks is implemented by stores that can list the weeks they hold, newest
// first.
type Weeks interface {
	Weeks(ctx context.Context) ([]time.Time, error)
}

// NoticeKind tells an error notice from an internal problem.
type NoticeKind uint8

const (
	// NoticeError tells developers about an error in their code.
	NoticeError NoticeKind = iota
	// NoticeProblem tells the default contact that Flawless itself could
	// not do its job (blame failed, an address was invalid, a notification
	// was given up on).
	NoticeProblem
)

// Notice is one notification.
type Notice struct {
	Kind NoticeKind
	// To are the recipients, valid and without duplicates.
	To []string
	// Entry is the error; for a problem notice that concerns no error it
	// is the zero Entry.
	Entry Entry
	// Known is the known-error rule of the blamed frame, or nil.
	Known *KnownError
	// Reasons say why the recipients got it.
	Reasons []string
	// Problem says what went wrong, for a problem notice.
	Problem string
	// Time is when the notice was decided.
	Time time.Time
}

// ProblemSubject is the subject of every problem notice.
const ProblemSubject = "Unexpected problem on Flawless Server"

// Subject returns the notice's subject line: "Error on <host> in <path>",
// or ProblemSubject.
func (n *Notice) Subject() string {
	if n.Kind == NoticeProblem {
		return ProblemSubject
	}
	host := ""
	if n.Entry.Last != nil {
		host = n.Entry.Last.Hostname
	}
	if host == "" {
		host = "unknown host"
	}
	return "Error on " + host + " in " + n.Entry.Key.Path
}
