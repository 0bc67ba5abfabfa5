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
	if rf.Value != nil {
		pv, cur := rf.Value.String(), rf.Value.Currency
		v.PointValue, v.Currency = &pv, &cur
	}
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
