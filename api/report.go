package api

import (
	"bytes"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/report"
)

// reportParams are the query parameters a report takes; any other is refused, so that a misspelt one is
// not silently ignored.
var reportParams = map[string]func(*report.Params) *string{
	"from":        func(p *report.Params) *string { return &p.From },
	"to":          func(p *report.Params) *string { return &p.To },
	"period":      func(p *report.Params) *string { return &p.Period },
	"point_value": func(p *report.Params) *string { return &p.PointValue },
	"currency":    func(p *report.Params) *string { return &p.Currency },
}

// handleReport is GET /v1/admin/reports/{name}: a finance report from one snapshot of the ledger, as
// JSON (the default) or CSV (?format=csv, or Accept: text/csv). Money columns take the server's point
// value (serve --point-value, --currency) unless the query gives one. The Tally-Reconciled header tells
// whether the report agreed with the account balances read in its snapshot.
func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	p := report.Params{PointValue: s.opts.PointValue, Currency: s.opts.Currency}
	q := r.URL.Query()
	var names []string
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	format := report.JSON
	if strings.Contains(r.Header.Get("Accept"), "text/csv") {
		format = report.CSV
	}
	for _, k := range names {
		if len(q[k]) > 1 {
			writeError(w, r, tally.Errorf(tally.EINVALID, "query parameter %s is given more than once", k))
			return
		}
		v := q.Get(k)
		if k == "format" {
			f, err := report.ParseFormat(v)
			if err != nil {
				writeError(w, r, err)
				return
			}
			format = f
			continue
		}
		field, ok := reportParams[k]
		if !ok {
			writeError(w, r, tally.Errorf(tally.EINVALID, "unknown query parameter %q: expected format, from, to, period, point_value, currency", k))
			return
		}
		*field(&p) = v
	}
	if q.Has("point_value") && !q.Has("currency") {
		p.Currency = "" // the server's currency belongs to the server's value
	}
	rep, err := report.Make(r.Context(), s.Store, name, p, time.Now())
	if err != nil {
		writeError(w, r, err)
		return
	}
	var body bytes.Buffer
	if err := rep.Write(&body, format); err != nil {
		writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", format.ContentType())
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Tally-Reconciled", strconv.FormatBool(rep.Balanced()))
	if format == report.CSV {
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	}
	w.Write(body.Bytes())
}
