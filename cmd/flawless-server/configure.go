package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// configure asks the questions of the original's questionnaire and writes
// the configuration file. A bad answer is explained and asked again; the
// end of the input stops it without writing anything.
func configure(in *bufio.Reader, out io.Writer, path string) error {
	ask := func(question, def string, check func(string) error) (string, error) {
		for {
			if def != "" {
				fmt.Fprintf(out, "%s [%s]: ", question, def)
			} else {
				fmt.Fprintf(out, "%s: ", question)
			}
			line, err := in.ReadString('\n')
			if err != nil && (line == "" || !errors.Is(err, io.EOF)) {
				fmt.Fprintln(out)
				return "", errors.New("no answer (end of input); nothing was written")
			}
			answer := strings.TrimSpace(line)
			if answer == "" {
				answer = def
			}
			if check != nil {
				if err := check(answer); err != nil {
					fmt.Fprintf(out, "  %v\n", err)
					continue
				}
			}
			return answer, nil
		}
	}
	yes := func(question string, def bool) (bool, error) {
		d := "n"
		if def {
			d = "y"
		}
		a, err := ask(question+" (y/n)", d, func(s string) error {
			switch strings.ToLower(s) {
			case "y", "yes", "n", "no":
				return nil
			}
			return errors.New("please answer y or n")
		})
		return strings.HasPrefix(strings.ToLower(a), "y"), err
	}
	optionalEmail := func(s string) error {
		if s == "" {
			return nil
		}
		if a, err := mail.ParseAddress(s); err != nil || a.Address != s {
			return fmt.Errorf("%q is not an email address like ann@example.com", s)
		}
		return nil
	}

	if _, err := os.Stat(path); err == nil {
		ok, err := yes(path+" exists. Overwrite it?", false)
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("kept the existing " + path)
		}
	}
	cfg := DefaultConfig()
	port, err := ask("Port to listen on", "9028", func(s string) error {
		if n, err := strconv.Atoi(s); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q is not a port number (1-65535)", s)
		}
		return nil
	})
	if err != nil {
		return err
	}
	cfg.Listen = ":" + port
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	if cfg.Hostname, err = ask("Base URL of the pages, for links in emails", "http://"+host+":"+port, func(s string) error {
		if !regexp.MustCompile(`^https?://[^\s/]+`).MatchString(s) {
			return errors.New("give a URL like http://flawless.example.com:9028")
		}
		return nil
	}); err != nil {
		return err
	}
	if cfg.SMTPHost, err = ask("SMTP server, host or host:port (empty: write emails to the log)", "", nil); err != nil {
		return err
	}
	if cfg.SMTPHost != "" {
		if cfg.SMTPUser, err = ask("SMTP user (empty: no login)", "", nil); err != nil {
			return err
		}
		if cfg.SMTPUser != "" {
			if cfg.SMTPPassword, err = ask("SMTP password", "", func(s string) error {
				if s == "" {
					return errors.New("a password is needed with a user")
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if cfg.SMTPUseTLS, err = yes("Use STARTTLS", true); err != nil {
			return err
		}
	}
	if cfg.EmailDomainName, err = ask("Your team's email domain", "example.com", func(s string) error {
		if !regexp.MustCompile(`^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$`).MatchString(s) {
			return fmt.Errorf("%q is not a domain like example.com", s)
		}
		return nil
	}); err != nil {
		return err
	}
	if cfg.DefaultContact, err = ask("Who hears about problems of Flawless itself (an email address, may be empty)", "", optionalEmail); err != nil {
		return err
	}
	if cfg.DataDirPath, err = ask("Directory for Flawless's data", cfg.DataDirPath, nil); err != nil {
		return err
	}
	if cfg.ConfigDirPath, err = ask("Directory of the rule files", cfg.ConfigDirPath, nil); err != nil {
		return err
	}
	repo, err := ask("Repository to blame in: a path to a clone, or a URL to clone from", ".", func(s string) error {
		if strings.Contains(s, "://") || strings.HasPrefix(s, "git@") {
			return nil
		}
		if _, err := os.Stat(filepath.Join(s, ".git")); err != nil {
			if _, err := os.Stat(filepath.Join(s, "objects")); err != nil {
				return fmt.Errorf("%s is not a git repository (give a path to a clone, or a URL)", s)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if strings.Contains(repo, "://") || strings.HasPrefix(repo, "git@") {
		cfg.RepoURL = repo
		if cfg.RepoBranchPattern, err = ask("Branches to track, a regular expression over origin/… (empty: the default branch)", "", func(s string) error {
			_, err := regexp.Compile(s)
			return err
		}); err != nil {
			return err
		}
	} else if repo != "." {
		cfg.RepoDir = repo
	}
	data, err := toml.Marshal(cfg)
	if err != nil {
		return err
	}
	head := "# Flawless configuration, written by flawless-server configure.\n# flawless-server options lists every option.\n\n"
	if err := os.WriteFile(path, append([]byte(head), data...), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(out, "Wrote %s. Start the server with: flawless-server start -conf %s\nThen open %s/check_health\n", path, path, cfg.Hostname)
	return nil
}
