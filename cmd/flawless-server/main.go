// Command flawless-server runs Flawless as a standalone server: services
// send reports to it over HTTP (package client), it blames them in the
// team's git repository and emails the developers, and it serves the weekly
// leaderboard and the rule admin pages.
//
//	flawless-server [start|configure|options|check|help] [-conf flawless.toml]
//
// With no configuration at all it starts on :9028, keeps its data in
// ./flawless-data, reads rules from ./flawless-rules, blames in the current
// directory when it is a git repository, and writes emails to the log.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/flawless-go/flawless"
	"github.com/flawless-go/flawless/blame"
	"github.com/flawless-go/flawless/notify"
	"github.com/flawless-go/flawless/rules"
	"github.com/flawless-go/flawless/store/bolt"
	"github.com/flawless-go/flawless/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

const usage = `usage: flawless-server [start|configure|options|check|help] [-conf path]

  start      run the server (the default)
  configure  answer a few questions and write the configuration file
  options    list every option with its default, type and description
  check      check the configuration and the rule files; exit 1 on a problem
  help       this text

  -conf path  the configuration file (default flawless.toml; a missing
              default file means all defaults)
`

// run is main without the process: testable.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) string) int {
	cmd := "start"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("flawless-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conf := fs.String("conf", "", "configuration file")
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	path, explicit := *conf, *conf != ""
	if !explicit {
		path = "flawless.toml"
	}
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "options":
		fmt.Fprint(stdout, describe())
		return 0
	case "configure":
		if err := configure(bufio.NewReader(stdin), stdout, path); err != nil {
			fmt.Fprintln(stderr, "flawless-server configure:", err)
			return 1
		}
		return 0
	case "check":
		cfg, err := LoadConfig(path, explicit, env)
		if err == nil {
			_, err = rules.Load(os.DirFS(cfg.ConfigDirPath), rules.Options{EmailDomain: cfg.EmailDomainName})
			if errors.Is(err, os.ErrNotExist) {
				err = nil
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s and the rules in %s are fine.\n", path, cfg.ConfigDirPath)
		return 0
	case "start":
		cfg, err := LoadConfig(path, explicit, env)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		if err := serve(ctx, cfg, stdout, stderr, nil); err != nil {
			fmt.Fprintln(stderr, "flawless-server:", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "unknown command %q\n%s", cmd, usage)
	return 2
}

// serve runs the server until ctx ends, then shuts down gracefully:
// in-flight requests finish, queued blames and emails are done (or left
// pending in the store for the next start). ready, if set, receives the
// address once listening.
func serve(ctx context.Context, cfg Config, stdout, stderr io.Writer, ready chan<- string) error {
	logger := newLogger(cfg, stderr)
	loc, _ := loadLocation(cfg.TimeZone)

	store, err := bolt.Open(filepath.Join(cfg.DataDirPath, "flawless.db"))
	if err != nil {
		return err
	}
	defer store.Close()

	created, err := rules.WriteStarter(cfg.ConfigDirPath)
	if err != nil {
		return fmt.Errorf("rules directory %s: %w", cfg.ConfigDirPath, err)
	}
	if len(created) > 0 {
		logger.Info("created commented example rule files", "dir", cfg.ConfigDirPath, "files", len(created))
	}
	ruleOpts := rules.Options{EmailDomain: cfg.EmailDomainName, IgnoreVCSDomain: cfg.IgnoreVCSEmailDomain}
	loader := &rules.Loader{Dir: cfg.ConfigDirPath, Options: ruleOpts, Logger: logger}
	set, err := loader.Load()
	if err != nil {
		return err
	}

	repo, repoDesc, err := openRepo(ctx, cfg, logger)
	if err != nil {
		return err
	}
	if repo != nil {
		defer repo.Close()
	}

	mailer, err := notify.NewMailer(notify.Config{
		Host: cfg.SMTPHost, User: cfg.SMTPUser, Password: cfg.SMTPPassword, StartTLS: cfg.SMTPUseTLS,
		ImplicitTLS: cfg.SMTPImplicitTLS, From: cfg.SMTPFrom, EmailDomain: cfg.EmailDomainName,
		BaseURL: baseURL(cfg), Logger: logger,
	})
	if err != nil {
		return err
	}

	ecfg := flawless.Config{
		Store: store, Notifier: mailer, Policy: set, Logger: logger, Location: loc,
		Threshold: cfg.ReportErrorThreshold, DefaultContact: cfg.DefaultContact, Workers: cfg.MaxConcurrentGitBlames,
		OnlyBlamePaths: compileAll(cfg.OnlyBlameFilepathsMatching, true), NeverBlameLines: compileAll(cfg.NeverBlameLinesMatching, false),
	}
	if ecfg.NeverBlameLines == nil {
		ecfg.NeverBlameLines = []*regexp.Regexp{}
	}
	if d, _ := time.ParseDuration(cfg.DuplicateEmailWindow); d > 0 {
		ecfg.DuplicateWindow = d
	} else {
		ecfg.DuplicateWindow = -1
	}
	if cfg.ReportOnlyAfterMinimumDate != "" {
		ecfg.MinimumDate, _ = time.ParseInLocation("2006-01-02", cfg.ReportOnlyAfterMinimumDate, loc)
	}
	if repo != nil {
		ecfg.Source, ecfg.Blamer = repo, repo
	}
	engine := flawless.New(ecfg)
	loader.OnChange = func(s *rules.Set) { engine.SetPolicy(s) }

	handler, err := web.New(web.Config{
		Engine: engine, Rules: ruleAdmin{loader: loader}, AdminToken: cfg.AdminToken, IngestToken: cfg.IngestToken,
		MaxReportBytes: cfg.MaxReportBytes, MinimumDate: ecfg.MinimumDate, Logger: logger,
		Health: func() map[string]any {
			m := cfg.redacted(blame.RedactURL)
			m["email_mode"] = map[bool]string{true: "log (no smtp_host)", false: "smtp"}[mailer.LogMode()]
			m["repository"] = repoDesc
			return m
		},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}

	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	go loader.Watch(bg, 2*time.Second)
	if repo != nil && (cfg.RepoURL != "" || cfg.RepoBranchPattern != "") {
		interval, _ := time.ParseDuration(cfg.RepoUpdateInterval)
		go repo.Keep(bg, max(interval, time.Second), cfg.RepoBranchPattern)
	}

	addr := ln.Addr().String()
	fmt.Fprintf(stdout, `Flawless is listening on %s
  pages:      %s/
  ingestion:  POST %s/api/v1/reports
  data:       %s
  rules:      %s
  repository: %s
  email:      %s
`, addr, baseURLFor(cfg, addr), baseURLFor(cfg, addr), abs(cfg.DataDirPath), abs(cfg.ConfigDirPath), repoDesc,
		map[bool]string{true: "written to the log (set smtp_host to send)", false: "sent through " + cfg.SMTPHost}[mailer.LogMode()])
	if ready != nil {
		ready <- addr
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		engine.Close(context.Background())
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		logger.Error("shutdown of the HTTP server", "err", err)
	}
	stopBG()
	if err := engine.Close(shutdownCtx); err != nil {
		logger.Warn("pending work left for the next start", "err", err)
	}
	return nil
}

// openRepo opens the repository to blame in, cloning repo_url first if
// needed; nil when there is none (reports are then counted, not blamed).
func openRepo(ctx context.Context, cfg Config, logger *slog.Logger) (*blame.Git, string, error) {
	dir := cfg.RepoDir
	if cfg.RepoURL != "" {
		if dir == "" {
			dir = filepath.Join(cfg.DataDirPath, "repo")
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
		err := blame.Clone(cctx, cfg.RepoURL, dir)
		cancel()
		if err != nil {
			return nil, "", err
		}
	}
	explicit := dir != ""
	if dir == "" {
		dir = findRepo(".")
	}
	opts := blame.Options{ModuleDir: cfg.ModuleDir, MaxConcurrent: cfg.MaxConcurrentGitBlames, Logger: logger}
	g, err := blame.Open(dir, opts)
	if err != nil {
		if explicit {
			return nil, "", err
		}
		logger.Warn("the current directory is not a git repository: reports are counted but not blamed; set repo_dir or repo_url")
		return nil, "none (reports are counted, not blamed)", nil
	}
	if cfg.RepoURL != "" || cfg.RepoBranchPattern != "" {
		uctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		if err := g.Update(uctx, cfg.RepoBranchPattern); err != nil {
			logger.Error("repository update failed", "err", err)
		}
		cancel()
	}
	desc := abs(dir)
	if cfg.RepoURL != "" {
		desc += " (from " + blame.RedactURL(cfg.RepoURL) + ")"
	}
	return g, desc, nil
}

// findRepo returns the nearest directory, from dir up, that holds a .git
// directory; dir when there is none.
func findRepo(dir string) string {
	d := abs(dir)
	for {
		if st, err := os.Stat(filepath.Join(d, ".git")); err == nil && st.IsDir() {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			return dir
		}
		d = parent
	}
}

// ruleAdmin lets the pages write and list the rule files.
type ruleAdmin struct{ loader *rules.Loader }

func (a ruleAdmin) Append(kind string, values url.Values) error {
	if err := rules.AppendForm(a.loader.Dir, kind, values); err != nil {
		return err
	}
	_, err := a.loader.Reload()
	return err
}

func (a ruleAdmin) Entries(kind string) ([]map[string]string, error) {
	s := a.loader.Current()
	if s == nil {
		return nil, errors.New("the rules are not loaded")
	}
	return s.Table(kind)
}

func compileAll(patterns []string, anchor bool) []*regexp.Regexp {
	if len(patterns) == 0 {
		return nil
	}
	var out []*regexp.Regexp
	for _, p := range patterns {
		if anchor {
			p = "^(?:" + p + ")"
		}
		out = append(out, regexp.MustCompile(p))
	}
	return out
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func baseURL(cfg Config) string { return baseURLFor(cfg, cfg.Listen) }

func baseURLFor(cfg Config, addr string) string {
	if cfg.Hostname != "" {
		return strings.TrimRight(cfg.Hostname, "/")
	}
	host, port, _ := net.SplitHostPort(addr)
	if host == "" || host == "::" || host == "0.0.0.0" || host == "[::]" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}
