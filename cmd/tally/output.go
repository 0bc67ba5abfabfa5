package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// A command prints its result in one of three ways, each written once here so that every command's output
// keeps the same shape: one line of JSON (--json, for scripts), indented JSON (the commands whose only
// output is JSON, read by people), or a table with a header row.

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// printIndentedJSON writes v as JSON indented by two spaces.
func printIndentedJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable starts a table whose columns are aligned two spaces apart, its header row written: write
// tab-separated rows to it, then Flush.
func newTable(w io.Writer, columns ...string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(columns, "\t"))
	return tw
}
