package report

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/tally-ledger/tally"
)

// ProgrammeValue reads the value per point of a programme file, its "reporting" setting:
//
//	{"reporting": {"point_value": "0.01", "currency": "EUR"}}
//
// (point_value may also be a JSON number; it is read as written, never through a float). The file's
// other keys are left to their readers. Both results are empty when the file sets none.
func ProgrammeValue(path string) (value, currency string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("programme: %w", err)
	}
	var f struct {
		Reporting *struct {
			PointValue json.Number `json:"point_value"`
			Currency   string      `json:"currency"`
		} `json:"reporting"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return "", "", fmt.Errorf("programme: %w", err)
	}
	if f.Reporting == nil {
		return "", "", nil
	}
	value, currency = f.Reporting.PointValue.String(), f.Reporting.Currency
	if _, err := ParsePointValue(value, currency); err != nil {
		return "", "", fmt.Errorf("programme: reporting: %s", tally.ErrorMessage(err))
	}
	return value, currency, nil
}
