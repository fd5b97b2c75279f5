// Package config reads component configuration the one way this project does:
// command-line flags, each with an environment-variable fallback, parsed once
// into the component's own Config struct, which then validates itself.
package config

import (
	"errors"
	"flag"
	"fmt"
)

// Parse parses args into fs, then applies env: for every flag (by name) that
// was not given on the command line and whose environment variable (by value)
// is set, the variable's value is used. Flags win over the environment, the
// environment over defaults. Each flag's usage names its variable, so -h
// documents both.
func Parse(fs *flag.FlagSet, args []string, getenv func(string) string, env map[string]string) error {
	for name, v := range env {
		f := fs.Lookup(name)
		if f == nil {
			return fmt.Errorf("config: env %s names unknown flag -%s", v, name)
		}
		f.Usage += " (env " + v + ")"
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	for name, v := range env {
		val := getenv(v)
		if given[name] || val == "" {
			continue
		}
		if err := fs.Set(name, val); err != nil {
			errs = append(errs, fmt.Errorf("env %s=%q: %w", v, val, err))
		}
	}
	return errors.Join(errs...)
}

// ListenAddr is the default listen address of a server: ":$PORT" when PORT is
// set (Cloud Run sets it and routes to every interface), otherwise def, which
// should be a loopback address so nothing listens beyond it unless asked.
func ListenAddr(getenv func(string) string, def string) string {
	if p := getenv("PORT"); p != "" {
		return ":" + p
	}
	return def
}
