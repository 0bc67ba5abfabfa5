package report

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/tally-ledger/tally"
)

// Format is how a report is written.
type Format string

// The formats.
const (
	JSON Format = "json"
	CSV  Format = "csv"
)

// ParseFormat reads a format name.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(strings.TrimSpace(s))); f {
	case JSON, CSV:
		return f, nil
	}
	return "", tally.Errorf(tally.EINVALID, "format %q is not json or csv", s)
}

// ContentType is the media type of the format.
func (f Format) ContentType() string {
	if f == CSV {
		return "text/csv; charset=utf-8"
	}
	return "application/json"
}

// Write writes the roll-forward in format f. CSV has one line per period and the money columns only
// when a point value is set; JSON also carries the reconciliation.
func (rf RollForward) Write(w io.Writer, f Format) error {
	if f == CSV {
		return rf.writeCSV(w)
	}
	return writeJSON(w, rf.jsonView())
}

var rollForwardColumns = []string{"opening", "issued", "redeemed", "expired", "adjusted", "closing"}

func (r RollForwardRow) amounts() []int64 {
	return []int64{r.Opening, r.Issued, r.Redeemed, r.Expired, r.Adjusted, r.Closing}
}

func (rf RollForward) writeCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := append([]string{"period", "start", "end"}, rollForwardColumns...)
	if rf.Value != nil {
		head = append(head, "currency")
		for _, c := range rollForwardColumns {
			head = append(head, c+"_value")
		}
	}
	cw.Write(head)
	for _, r := range rf.Rows {
		line := []string{r.Period, r.Start.Format(dateLayout), r.End.Format(dateLayout)}
		for _, a := range r.amounts() {
			line = append(line, strconv.FormatInt(a, 10))
		}
		if rf.Value != nil {
			line = append(line, rf.Value.Currency)
			for _, a := range r.amounts() {
				line = append(line, rf.Value.Of(a))
			}
		}
		cw.Write(line)
	}
	cw.Flush()
	return cw.Error()
}

type rollForwardJSON struct {
	Report         string               `json:"report"`
	Period         Period               `json:"period"`
	From           string               `json:"from"`
	To             string               `json:"to"`
	AsOf           time.Time            `json:"as_of"`
	PointValue     *string              `json:"point_value"`
	Currency       *string              `json:"currency"`
	Rows           []rollForwardRowJSON `json:"rows"`
	Reconciliation reconciliationJSON   `json:"reconciliation"`
}

type rollForwardRowJSON struct {
	Period   string            `json:"period"`
	Start    string            `json:"start"`
	End      string            `json:"end"`
	Opening  int64             `json:"opening"`
	Issued   int64             `json:"issued"`
	Redeemed int64             `json:"redeemed"`
	Expired  int64             `json:"expired"`
	Adjusted int64             `json:"adjusted"`
	Closing  int64             `json:"closing"`
	Value    map[string]string `json:"value,omitempty"` // the money of each amount, exact decimals
}

type reconciliationJSON struct {
	CustomerBalances int64 `json:"customer_balances"`
	LaterMovements   int64 `json:"later_movements"`
	Reconciled       bool  `json:"reconciled"`
}

func (rf RollForward) jsonView() rollForwardJSON {
	v := rollForwardJSON{
		Report: "rollforward", Period: rf.Period, From: rf.From.Format(dateLayout), To: rf.To.Format(dateLayout),
		AsOf: rf.AsOf, Rows: []rollForwardRowJSON{},
		Reconciliation: reconciliationJSON(rf.Check),
	}
	v.PointValue, v.Currency = valueJSON(rf.Value)
	for _, r := range rf.Rows {
		row := rollForwardRowJSON{Period: r.Period, Start: r.Start.Format(dateLayout), End: r.End.Format(dateLayout),
			Opening: r.Opening, Issued: r.Issued, Redeemed: r.Redeemed, Expired: r.Expired, Adjusted: r.Adjusted, Closing: r.Closing}
		if rf.Value != nil {
			row.Value = map[string]string{}
			for i, a := range r.amounts() {
				row.Value[rollForwardColumns[i]] = rf.Value.Of(a)
			}
		}
		v.Rows = append(v.Rows, row)
	}
	return v
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Write writes the outstanding points in format f. CSV has one line per bucket: dimension (status or
// expiry_month), bucket, points, lots, pending and lapsed points (expiry only), and their money when a
// point value is set.
func (o Outstanding) Write(w io.Writer, f Format) error {
	if f == CSV {
		cw := csv.NewWriter(w)
		head := []string{"dimension", "bucket", "points", "lots", "pending_points", "lapsed_points"}
		if o.Value != nil {
			head = append(head, "currency", "value")
		}
		cw.Write(head)
		line := func(dim string, l OutstandingLine) {
			rec := []string{dim, l.Key, strconv.FormatInt(l.Points, 10), strconv.FormatInt(l.Lots, 10), "", ""}
			if dim == "expiry_month" {
				rec[4], rec[5] = strconv.FormatInt(l.Pending, 10), strconv.FormatInt(l.Lapsed, 10)
			}
			if o.Value != nil {
				rec = append(rec, o.Value.Currency, o.Value.Of(l.Points))
			}
			cw.Write(rec)
		}
		for _, l := range o.ByStatus {
			line("status", l)
		}
		for _, l := range o.ByExpiry {
			line("expiry_month", l)
		}
		cw.Flush()
		return cw.Error()
	}
	type lineJSON struct {
		Status  string  `json:"status,omitempty"`
		Month   string  `json:"month,omitempty"`
		Points  int64   `json:"points"`
		Lots    int64   `json:"lots"`
		Pending *int64  `json:"pending_points,omitempty"`
		Lapsed  *int64  `json:"lapsed_points,omitempty"`
		Value   *string `json:"value,omitempty"`
	}
	money := func(points int64) *string {
		if o.Value == nil {
			return nil
		}
		s := o.Value.Of(points)
		return &s
	}
	v := struct {
		Report         string     `json:"report"`
		AsOf           time.Time  `json:"as_of"`
		PointValue     *string    `json:"point_value"`
		Currency       *string    `json:"currency"`
		Total          int64      `json:"total_points"`
		TotalValue     *string    `json:"total_value,omitempty"`
		ByStatus       []lineJSON `json:"by_status"`
		ByExpiry       []lineJSON `json:"by_expiry_month"`
		Reconciliation struct {
			CustomerBalances int64 `json:"customer_balances"`
			Overdrawn        int64 `json:"overdrawn_balances"`
			PendingBalances  int64 `json:"pending_balances"`
			Reconciled       bool  `json:"reconciled"`
		} `json:"reconciliation"`
	}{Report: "outstanding", AsOf: o.AsOf, Total: o.Total, TotalValue: money(o.Total), ByStatus: []lineJSON{}, ByExpiry: []lineJSON{}}
	v.PointValue, v.Currency = valueJSON(o.Value)
	for _, l := range o.ByStatus {
		v.ByStatus = append(v.ByStatus, lineJSON{Status: l.Key, Points: l.Points, Lots: l.Lots, Value: money(l.Points)})
	}
	for _, l := range o.ByExpiry {
		l := l
		v.ByExpiry = append(v.ByExpiry, lineJSON{Month: l.Key, Points: l.Points, Lots: l.Lots, Pending: &l.Pending, Lapsed: &l.Lapsed, Value: money(l.Points)})
	}
	v.Reconciliation.CustomerBalances = o.Accounts.Balance
	v.Reconciliation.Overdrawn = o.Accounts.Overdrawn
	v.Reconciliation.PendingBalances = o.Accounts.Pending
	v.Reconciliation.Reconciled = o.Reconciled
	return writeJSON(w, v)
}

// Write writes the breakage report in format f, a line per cohort.
func (b Breakage) Write(w io.Writer, f Format) error {
	if f == CSV {
		cw := csv.NewWriter(w)
		head := []string{"cohort", "lots", "issued", "redeemed", "expired", "other", "remaining", "lapsed", "matured", "breakage_rate"}
		if b.Value != nil {
			head = append(head, "currency", "issued_value", "expired_value")
		}
		cw.Write(head)
		for _, c := range b.Cohorts {
			rec := []string{c.Cohort}
			for _, n := range []int64{c.Lots, c.Issued, c.Redeemed, c.Expired, c.Other, c.Remaining, c.Lapsed} {
				rec = append(rec, strconv.FormatInt(n, 10))
			}
			rec = append(rec, strconv.FormatBool(c.Matured), c.Rate)
			if b.Value != nil {
				rec = append(rec, b.Value.Currency, b.Value.Of(c.Issued), b.Value.Of(c.Expired))
			}
			cw.Write(rec)
		}
		cw.Flush()
		return cw.Error()
	}
	type cohortJSON struct {
		Cohort       string  `json:"cohort"`
		Lots         int64   `json:"lots"`
		Issued       int64   `json:"issued"`
		Redeemed     int64   `json:"redeemed"`
		Expired      int64   `json:"expired"`
		Other        int64   `json:"other"`
		Remaining    int64   `json:"remaining"`
		Lapsed       int64   `json:"lapsed"`
		Matured      bool    `json:"matured"`
		Rate         *string `json:"breakage_rate"`
		IssuedValue  *string `json:"issued_value,omitempty"`
		ExpiredValue *string `json:"expired_value,omitempty"`
	}
	v := struct {
		Report     string       `json:"report"`
		AsOf       time.Time    `json:"as_of"`
		PointValue *string      `json:"point_value"`
		Currency   *string      `json:"currency"`
		Cohorts    []cohortJSON `json:"cohorts"`
	}{Report: "breakage", AsOf: b.AsOf, Cohorts: []cohortJSON{}}
	v.PointValue, v.Currency = valueJSON(b.Value)
	for _, c := range b.Cohorts {
		j := cohortJSON{Cohort: c.Cohort, Lots: c.Lots, Issued: c.Issued, Redeemed: c.Redeemed, Expired: c.Expired,
			Other: c.Other, Remaining: c.Remaining, Lapsed: c.Lapsed, Matured: c.Matured}
		if c.Rate != "" {
			rate := c.Rate
			j.Rate = &rate
		}
		if b.Value != nil {
			iv, ev := b.Value.Of(c.Issued), b.Value.Of(c.Expired)
			j.IssuedValue, j.ExpiredValue = &iv, &ev
		}
		v.Cohorts = append(v.Cohorts, j)
	}
	return writeJSON(w, v)
}

func valueJSON(v *PointValue) (value, currency *string) {
	if v == nil {
		return nil, nil
	}
	s, c := v.String(), v.Currency
	return &s, &c
}
