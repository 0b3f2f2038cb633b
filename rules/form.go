package rules

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
)

// AppendForm adds an entry to the rule file of the kind whose table is
// table ("known_error", "watch", …) in dir, from form values named like the
// TOML keys. Lists (email_recipients) are comma- or space-separated;
// booleans are "on", "true" or "1". Empty values are left out.
func AppendForm(dir, table string, values map[string][]string) error {
	k, ok := KindOf(table)
	if !ok {
		return fmt.Errorf("unknown rule kind %q", table)
	}
	get := func(name string) string {
		if v := values[name]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	num := func(name string) (*int, error) {
		s := get(name)
		if s == "" {
			return nil, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a whole number", name, s)
		}
		return &n, nil
	}
	var entry any
	switch k {
	case KindBuildingBlock, KindThirdParty:
		entry = CodeRule{Filename: get("filename"), FunctionName: get("function_name"), CodeFragment: get("code_fragment")}
	case KindKnownError:
		e := KnownError{Filename: get("filename"), FunctionName: get("function_name"), CodeFragment: get("code_fragment"), EmailHeader: get("email_header")}
		var err error
		if e.MinAlertThreshold, err = num("min_alert_threshold"); err != nil {
			return err
		}
		if e.MaxAlertThreshold, err = num("max_alert_threshold"); err != nil {
			return err
		}
		if e.AlertEveryNOccurrences, err = num("alert_every_n_occurrences"); err != nil {
			return err
		}
		e.EmailRecipients = strings.FieldsFunc(get("email_recipients"), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' })
		entry = e
	case KindIgnoredException:
		entry = IgnoredException{Type: get("type"), MessageMatching: get("message_matching")}
	case KindWatch:
		b := strings.ToLower(get("watch_all_errors"))
		entry = Watch{Email: get("email"), Filepath: get("filepath"), WatchAllErrors: b == "on" || b == "true" || b == "1"}
	case KindDisown:
		entry = Disown{Filepath: get("filepath"), Email: get("email"), DesignatedEmail: get("designated_email")}
	case KindRemap:
		entry = Remap{Remap: get("remap"), To: get("to")}
	}
	return Append(dir, k, entry)
}

// Table returns the entries of one kind as rows of TOML key → value, in
// file order, with "at" giving where each is written.
func (s *Set) Table(table string) ([]map[string]string, error) {
	k, ok := KindOf(table)
	if !ok {
		return nil, fmt.Errorf("unknown rule kind %q", table)
	}
	var list any
	switch k {
	case KindBuildingBlock:
		list = s.BuildingBlocks
	case KindThirdParty:
		list = s.ThirdParty
	case KindKnownError:
		list = s.KnownErrors
	case KindIgnoredException:
		list = s.IgnoredExceptions
	case KindWatch:
		list = s.Watches
	case KindDisown:
		list = s.Disowns
	case KindRemap:
		list = s.Remaps
	}
	v := reflect.ValueOf(list)
	rows := make([]map[string]string, 0, v.Len())
	for i := range v.Len() {
		row := map[string]string{}
		e := v.Index(i)
		for j := range e.NumField() {
			f := e.Type().Field(j)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			val := e.Field(j)
			switch {
			case f.Name == "Pos":
				row["at"] = val.Interface().(Pos).String()
			case name == "" || name == "-":
			case val.Kind() == reflect.Pointer:
				if !val.IsNil() {
					row[name] = fmt.Sprint(val.Elem().Interface())
				}
			case val.Kind() == reflect.Slice:
				row[name] = strings.Join(val.Interface().([]string), ", ")
			default:
				row[name] = fmt.Sprint(val.Interface())
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

//go:embed starter
var starter embed.FS

// WriteStarter creates dir, if needed, with every rule file as a commented
// example (no rule is active), leaving existing files alone. It returns the
// files it created.
func WriteStarter(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var created []string
	for _, k := range Kinds {
		p := filepath.Join(dir, k.File)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		data, err := starter.ReadFile("starter/" + k.File)
		if err != nil {
			return created, err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return created, err
		}
		created = append(created, p)
	}
	return created, nil
}
