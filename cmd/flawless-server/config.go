package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// Config is flawless.toml. Every option has a default, so an empty file,
// or none, gives a working server.
type Config struct {
	Listen                     string   `toml:"listen"`
	Hostname                   string   `toml:"hostname"`
	EmailDomainName            string   `toml:"email_domain_name"`
	IgnoreVCSEmailDomain       bool     `toml:"ignore_vcs_email_domain"`
	DefaultContact             string   `toml:"default_contact"`
	SMTPHost                   string   `toml:"smtp_host"`
	SMTPUser                   string   `toml:"smtp_user"`
	SMTPPassword               string   `toml:"smtp_password"`
	SMTPUseTLS                 bool     `toml:"smtp_use_tls"`
	SMTPImplicitTLS            bool     `toml:"smtp_implicit_tls"`
	SMTPFrom                   string   `toml:"smtp_from"`
	DataDirPath                string   `toml:"data_dir_path"`
	ConfigDirPath              string   `toml:"config_dir_path"`
	ReportOnlyAfterMinimumDate string   `toml:"report_only_after_minimum_date"`
	ReportErrorThreshold       int      `toml:"report_error_threshold"`
	OnlyBlameFilepathsMatching []string `toml:"only_blame_filepaths_matching"`
	NeverBlameLinesMatching    []string `toml:"never_blame_lines_matching"`
	MaxConcurrentGitBlames     int      `toml:"max_concurrent_git_blames"`
	RepoDir                    string   `toml:"repo_dir"`
	RepoURL                    string   `toml:"repo_url"`
	RepoBranchPattern          string   `toml:"repo_branch_pattern"`
	RepoUpdateInterval         string   `toml:"repo_update_interval"`
	ModuleDir                  string   `toml:"module_dir"`
	TimeZone                   string   `toml:"time_zone"`
	DuplicateEmailWindow       string   `toml:"duplicate_email_window"`
	AdminToken                 string   `toml:"admin_token"`
	IngestToken                string   `toml:"ingest_token"`
	MaxReportBytes             int64    `toml:"max_report_bytes"`
	LogLevel                   string   `toml:"log_level"`
	LogFormat                  string   `toml:"log_format"`
}

// option describes one option for `flawless-server options`.
type option struct {
	name, help string
	secret     bool
}

var options = []option{
	{"listen", "address the HTTP server listens on (ingestion and pages)", false},
	{"hostname", "base URL of the pages, for links in emails; empty: http://localhost plus the listen port", false},
	{"email_domain_name", "the team's email domain: author addresses whose domain has no dot get it", false},
	{"ignore_vcs_email_domain", "always replace the domain of author addresses with email_domain_name", false},
	{"default_contact", "address told about problems of Flawless itself (blame failures, undeliverable mail)", false},
	{"smtp_host", "SMTP server, host or host:port; empty: emails are written to the log", false},
	{"smtp_user", "SMTP user for AUTH", false},
	{"smtp_password", "SMTP password for AUTH", true},
	{"smtp_use_tls", "upgrade the SMTP connection with STARTTLS", false},
	{"smtp_implicit_tls", "connect to the SMTP server with TLS from the start (port 465)", false},
	{"smtp_from", "sender address; empty: flawless@email_domain_name", false},
	{"data_dir_path", "directory of the store (counts, notification state, past weeks)", false},
	{"config_dir_path", "directory of the rule files; created with commented examples", false},
	{"report_only_after_minimum_date", "YYYY-MM-DD: email ordinary errors only in lines changed on or after it; empty: no cutoff", false},
	{"report_error_threshold", "occurrences in a week before an ordinary error is emailed", false},
	{"only_blame_filepaths_matching", "regular expressions (anchored at the start) of repository paths that may be blamed; empty: all", false},
	{"never_blame_lines_matching", "regular expressions of lines never blamed unless they are known errors", false},
	{"max_concurrent_git_blames", "blames and deliveries running at once; more wait in a queue", false},
	{"repo_dir", "the git repository to blame in; empty: repo_url's clone in data_dir_path, else the current directory if it is a repository", false},
	{"repo_url", "URL to clone into repo_dir and fetch from; empty: the repository is managed by you", false},
	{"repo_branch_pattern", "regular expression of remote branches (origin/...) to track; the newest by natural sort is blamed at when a report's revision is missing", false},
	{"repo_update_interval", "how often to fetch repo_url", false},
	{"module_dir", "directory of the Go module inside the repository, for monorepos", false},
	{"time_zone", "time zone of week boundaries (weeks start Sunday 00:00), an IANA name or Local", false},
	{"duplicate_email_window", "never two emails about one error within this time", false},
	{"admin_token", "token required to add rules from the web pages; empty: only from loopback", true},
	{"ingest_token", "bearer token clients must send with reports; empty: none", true},
	{"max_report_bytes", "largest ingestion request body, in bytes", false},
	{"log_level", "debug, info, warn or error", false},
	{"log_format", "text or json", false},
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Listen:                  ":9028",
		DataDirPath:             "flawless-data",
		ConfigDirPath:           "flawless-rules",
		ReportErrorThreshold:    3,
		NeverBlameLinesMatching: []string{`^\s*panic\(\s*[\pL_][\pL\pN_]*\s*\)\s*;?\s*$`},
		MaxConcurrentGitBlames:  10,
		RepoUpdateInterval:      "5m",
		TimeZone:                "Local",
		DuplicateEmailWindow:    "5m",
		MaxReportBytes:          1 << 20,
		LogLevel:                "info",
		LogFormat:               "text",
	}
}

// ConfigError is a problem in the configuration, at a line and column of
// the file (both 0 when it came from the environment).
type ConfigError struct {
	File         string
	Line, Column int
	Msg          string
}

func (e *ConfigError) Error() string {
	switch {
	case e.Line > 0:
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
	case e.File != "":
		return e.File + ": " + e.Msg
	}
	return e.Msg
}

// LoadConfig reads the file at path over the defaults (a missing file is
// fine when mustExist is false), applies FLAWLESS_<OPTION> variables from
// env, and checks the result.
func LoadConfig(path string, mustExist bool, env func(string) string) (Config, error) {
	cfg := DefaultConfig()
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := decodeConfig(path, data, &cfg); err != nil {
			return cfg, err
		}
	case errors.Is(err, os.ErrNotExist) && !mustExist:
		data = nil
	default:
		return cfg, &ConfigError{File: path, Msg: err.Error()}
	}
	if err := applyEnv(&cfg, env); err != nil {
		return cfg, err
	}
	return cfg, validate(cfg, path, data)
}

func decodeConfig(path string, data []byte, cfg *Config) error {
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	err := dec.Decode(cfg)
	var strict *toml.StrictMissingError
	var de *toml.DecodeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &strict):
		var errs []error
		for i := range strict.Errors {
			line, col := strict.Errors[i].Position()
			errs = append(errs, &ConfigError{File: path, Line: line, Column: col,
				Msg: fmt.Sprintf("unknown option %q (flawless-server options lists them)", strings.Join(strict.Errors[i].Key(), "."))})
		}
		return errors.Join(errs...)
	case errors.As(err, &de):
		line, col := de.Position()
		return &ConfigError{File: path, Line: line, Column: col, Msg: strings.TrimPrefix(de.Error(), "toml: ")}
	}
	return &ConfigError{File: path, Msg: err.Error()}
}

// field returns the reflect value of an option by name.
func field(cfg *Config, name string) reflect.Value {
	v := reflect.ValueOf(cfg).Elem()
	for i := range v.NumField() {
		if strings.Split(v.Type().Field(i).Tag.Get("toml"), ",")[0] == name {
			return v.Field(i)
		}
	}
	return reflect.Value{}
}

// applyEnv overrides options from FLAWLESS_<OPTION> variables; lists are
// comma-separated.
func applyEnv(cfg *Config, env func(string) string) error {
	for _, o := range options {
		name := "FLAWLESS_" + strings.ToUpper(o.name)
		s := env(name)
		if s == "" {
			continue
		}
		f := field(cfg, o.name)
		bad := func(what string) error {
			return &ConfigError{Msg: fmt.Sprintf("environment variable %s: %q is not %s", name, s, what)}
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString(s)
		case reflect.Bool:
			b, err := strconv.ParseBool(s)
			if err != nil {
				return bad("true or false")
			}
			f.SetBool(b)
		case reflect.Int, reflect.Int64:
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return bad("a whole number")
			}
			f.SetInt(n)
		case reflect.Slice:
			var list []string
			for _, p := range strings.Split(s, ",") {
				if p = strings.TrimSpace(p); p != "" {
					list = append(list, p)
				}
			}
			f.Set(reflect.ValueOf(list))
		}
	}
	return nil
}

// validate checks every option, placing each problem on the option's line.
func validate(cfg Config, path string, data []byte) error {
	var errs []error
	bad := func(name, format string, args ...any) {
		e := &ConfigError{File: path, Msg: name + ": " + fmt.Sprintf(format, args...)}
		if line, col := keyLine(data, name); line > 0 {
			e.Line, e.Column = line, col
		} else if os.Getenv("FLAWLESS_"+strings.ToUpper(name)) != "" {
			e.File = "FLAWLESS_" + strings.ToUpper(name)
		}
		errs = append(errs, e)
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		bad("listen", "%q is not host:port or :port", cfg.Listen)
	}
	for name, addr := range map[string]string{"default_contact": cfg.DefaultContact, "smtp_from": cfg.SMTPFrom} {
		if addr != "" {
			if _, err := mail.ParseAddress(addr); err != nil {
				bad(name, "%q is not a valid email address", addr)
			}
		}
	}
	if cfg.ReportOnlyAfterMinimumDate != "" {
		if _, err := time.Parse("2006-01-02", cfg.ReportOnlyAfterMinimumDate); err != nil {
			bad("report_only_after_minimum_date", "%q is not a date like 2024-01-31", cfg.ReportOnlyAfterMinimumDate)
		}
	}
	if cfg.ReportErrorThreshold < 1 {
		bad("report_error_threshold", "must be at least 1, not %d", cfg.ReportErrorThreshold)
	}
	if cfg.MaxConcurrentGitBlames < 1 {
		bad("max_concurrent_git_blames", "must be at least 1, not %d", cfg.MaxConcurrentGitBlames)
	}
	if cfg.MaxReportBytes < 1024 {
		bad("max_report_bytes", "must be at least 1024, not %d", cfg.MaxReportBytes)
	}
	for name, list := range map[string][]string{"only_blame_filepaths_matching": cfg.OnlyBlameFilepathsMatching, "never_blame_lines_matching": cfg.NeverBlameLinesMatching} {
		for _, p := range list {
			if _, err := regexp.Compile(p); err != nil {
				bad(name, "bad regular expression %q: %v", p, err)
			}
		}
	}
	if cfg.RepoBranchPattern != "" {
		if _, err := regexp.Compile(cfg.RepoBranchPattern); err != nil {
			bad("repo_branch_pattern", "bad regular expression: %v", err)
		}
	}
	for name, d := range map[string]string{"repo_update_interval": cfg.RepoUpdateInterval, "duplicate_email_window": cfg.DuplicateEmailWindow} {
		if v, err := time.ParseDuration(d); err != nil || v < 0 {
			bad(name, "%q is not a duration like 5m or 90s", d)
		}
	}
	if _, err := loadLocation(cfg.TimeZone); err != nil {
		bad("time_zone", "%v", err)
	}
	if cfg.SMTPUseTLS && cfg.SMTPImplicitTLS {
		bad("smtp_use_tls", "choose STARTTLS (smtp_use_tls) or implicit TLS (smtp_implicit_tls), not both")
	}
	switch strings.ToLower(cfg.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "%q is not debug, info, warn or error", cfg.LogLevel)
	}
	switch cfg.LogFormat {
	case "text", "json":
	default:
		bad("log_format", "%q is not text or json", cfg.LogFormat)
	}
	return errors.Join(errs...)
}

func loadLocation(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return time.Local, nil
	}
	return time.LoadLocation(name)
}

// keyLine finds where an option is set in the file.
func keyLine(data []byte, name string) (int, int) {
	re := regexp.MustCompile(`^(\s*)"?` + regexp.QuoteMeta(name) + `"?\s*=`)
	for i, l := range strings.Split(string(data), "\n") {
		if m := re.FindStringSubmatchIndex(l); m != nil {
			return i + 1, m[3] + 1
		}
	}
	return 0, 0
}

// redacted returns the options for the health page, secrets hidden and
// credentials taken out of URLs.
func (c Config) redacted(redactURL func(string) string) map[string]any {
	out := map[string]any{}
	for _, o := range options {
		v := field(&c, o.name).Interface()
		if o.secret {
			if s, _ := v.(string); s != "" {
				v = "(set)"
			}
		}
		out[o.name] = v
	}
	out["repo_url"] = redactURL(c.RepoURL)
	return out
}

// describe prints each option with its default, type and description.
func describe() string {
	def := DefaultConfig()
	var b strings.Builder
	for _, o := range options {
		f := field(&def, o.name)
		typ := map[reflect.Kind]string{reflect.String: "string", reflect.Bool: "bool", reflect.Int: "integer", reflect.Int64: "integer", reflect.Slice: "list of strings"}[f.Kind()]
		switch o.name {
		case "repo_update_interval", "duplicate_email_window":
			typ = "duration"
		case "report_only_after_minimum_date":
			typ = "date"
		}
		val := fmt.Sprintf("%q", f.Interface())
		if f.Kind() != reflect.String {
			val = fmt.Sprint(f.Interface())
		}
		if f.Kind() == reflect.Slice {
			val = fmt.Sprintf("%q", f.Interface())
		}
		fmt.Fprintf(&b, "%-31s %-16s default %s\n    %s (env FLAWLESS_%s)\n", o.name, typ, val, o.help, strings.ToUpper(o.name))
	}
	return b.String()
}
