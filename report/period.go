// Package report makes the finance reports of the ledger: the roll-forward of the points liability per
// period, the points outstanding by status and expiry month, and breakage per cohort. The database sums
// (tally.ReportStore, one snapshot per report); this package decides what the sums mean, once for every
// store, and writes them as JSON or CSV.
package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/tally-ledger/tally"
)

// Period is the length of a roll-forward's rows: calendar periods in UTC.
type Period string

// The periods.
const (
	Day     Period = "day"
	Month   Period = "month"
	Quarter Period = "quarter"
	Year    Period = "year"
)

// ParsePeriod reads a period name.
func ParsePeriod(s string) (Period, error) {
	switch p := Period(strings.ToLower(strings.TrimSpace(s))); p {
	case Day, Month, Quarter, Year:
		return p, nil
	}
	return "", tally.Errorf(tally.EINVALID, "period %q is not one of day, month, quarter, year", s)
}

// start returns the first day of the period holding day.
func (p Period) start(day time.Time) time.Time {
	y, m, d := day.Date()
	switch p {
	case Month:
		d = 1
	case Quarter:
		m, d = m-(m-1)%3, 1
	case Year:
		m, d = time.January, 1
	}
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// next returns the first day of the period after the one that begins on start.
func (p Period) next(start time.Time) time.Time {
	switch p {
	case Month:
		return start.AddDate(0, 1, 0)
	case Quarter:
		return start.AddDate(0, 3, 0)
	case Year:
		return start.AddDate(1, 0, 0)
	}
	return start.AddDate(0, 0, 1)
}

// label names the period that begins on start: 2026-03-14, 2026-03, 2026-Q1, 2026.
func (p Period) label(start time.Time) string {
	switch p {
	case Month:
		return start.Format("2006-01")
	case Quarter:
		return fmt.Sprintf("%d-Q%d", start.Year(), (int(start.Month())-1)/3+1)
	case Year:
		return start.Format("2006")
	}
	return start.Format(dateLayout)
}

const dateLayout = "2006-01-02"

// ParseDate reads a calendar date (YYYY-MM-DD), a day in UTC.
func ParseDate(name, s string) (time.Time, error) {
	t, err := time.Parse(dateLayout, strings.TrimSpace(s))
	if err != nil {
		return time.Time{}, tally.Errorf(tally.EINVALID, "%s %q is not a date (YYYY-MM-DD)", name, s)
	}
	if t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, tally.Errorf(tally.EINVALID, "%s %q is out of range", name, s)
	}
	return t, nil
}

// dayOf returns 00:00 UTC of t's day.
func dayOf(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// month returns the first day of t's month, UTC.
func month(t time.Time) time.Time { return Month.start(t.UTC()) }
