package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

// envDefault is the value of an environment variable, or def when it is unset.
func envDefault(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// durationFlag registers a duration flag whose default comes from an environment variable. A malformed
// environment value is reported when the returned function is called, after flag parsing.
func durationFlag(fs *flag.FlagSet, name, env string, def time.Duration, usage string) func() (time.Duration, error) {
	s := fs.String(name, envDefault(env, def.String()), usage+" (env "+env+")")
	return func() (time.Duration, error) {
		d, err := time.ParseDuration(*s)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not a duration such as 30s or 720h", source(fs, name, env), *s)
		}
		return d, nil
	}
}

// intFlag is durationFlag for integers.
func intFlag(fs *flag.FlagSet, name, env string, def int, usage string) func() (int, error) {
	s := fs.String(name, envDefault(env, fmt.Sprint(def)), usage+" (env "+env+")")
	return func() (int, error) {
		var n int
		if _, err := fmt.Sscanf(*s, "%d", &n); err != nil || fmt.Sprint(n) != *s {
			return 0, fmt.Errorf("%s: %q is not a whole number", source(fs, name, env), *s)
		}
		return n, nil
	}
}

// source names where a flag's value came from, for an error about it: the flag when it was given on the
// command line, else the environment variable that supplied it. Call it after parsing.
func source(fs *flag.FlagSet, name, env string) string {
	if !flagGiven(fs, name) && os.Getenv(env) != "" {
		return env
	}
	return "--" + name
}
