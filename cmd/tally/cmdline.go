package main

import (
	"flag"
	"fmt"
	"io"
	"os/user"
)

// newFlagSet is a subcommand's flag set: a bad flag or -h prints the usage on stderr and comes back from
// Parse as an error (the command returns errUsageShown, exit status 2) instead of ending the process.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// dbFlagSet is newFlagSet with --db, which nearly every subcommand takes.
func dbFlagSet(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := newFlagSet(name, stderr)
	return fs, dbFlag(fs)
}

// parseWithArg parses flags given before or after one positional argument.
func parseWithArg(fs *flag.FlagSet, args []string, what string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", errUsageShown
	}
	if fs.NArg() == 0 {
		return "", fmt.Errorf("%s is required", what)
	}
	arg := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil {
		return "", errUsageShown
	}
	if fs.NArg() > 0 {
		return "", fmt.Errorf("unexpected arguments after %s: %q", what, fs.Args())
	}
	return arg, nil
}

// takesNoArgs refuses arguments left after the flags, for a command that takes none.
func takesNoArgs(fs *flag.FlagSet, cmd string) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("%s takes no arguments, got %q", cmd, fs.Arg(0))
	}
	return nil
}

// noArgs refuses arguments left after the flags: a flag placed after one would be silently ignored. (The
// catalog commands word it so; takesNoArgs is the older commands' wording, kept as users know it.)
func noArgs(fs *flag.FlagSet, cmd string) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q (flags go before arguments)", cmd, fs.Arg(0))
	}
	return nil
}

// flagGiven reports whether a flag was on the command line (after Parse).
func flagGiven(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}

// operatingUser is the --actor recorded when none is given: the operating system user who ran the
// command, as "cli:NAME", or "cli" when it cannot be told.
func operatingUser() string {
	if u, err := user.Current(); err == nil {
		return "cli:" + u.Username
	}
	return "cli"
}
