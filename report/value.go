package report

import (
	"math/big"
	"regexp"
	"strings"

	"github.com/tally-ledger/tally"
)

// PointValue is what one point is worth in a currency, an exact decimal: money is points times it,
// computed in integers and never rounded, so money columns add up exactly as the points do.
type PointValue struct {
	Currency string   // ISO 4217 code, such as EUR
	unscaled *big.Int // the value times 10^scale
	scale    int      // digits after the decimal point
}

var (
	decimalPattern  = regexp.MustCompile(`^[0-9]{1,12}(\.[0-9]{1,9})?$`)
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
)

// ParsePointValue reads a value per point ("0.01", at most 9 decimals) and its currency ("EUR").
// An empty value means no money columns: nil, and then the currency must be empty too.
func ParsePointValue(value, currency string) (*PointValue, error) {
	value, currency = strings.TrimSpace(value), strings.TrimSpace(currency)
	if value == "" {
		if currency != "" {
			return nil, tally.Errorf(tally.EINVALID, "a currency needs a point value")
		}
		return nil, nil
	}
	if !decimalPattern.MatchString(value) {
		return nil, tally.Errorf(tally.EINVALID, "point value %q is not a decimal number such as 0.01 (at most 9 decimals)", value)
	}
	if !currencyPattern.MatchString(currency) {
		return nil, tally.Errorf(tally.EINVALID, "currency %q is not a three-letter ISO 4217 code such as EUR", currency)
	}
	whole, frac, _ := strings.Cut(value, ".")
	u, _ := new(big.Int).SetString(whole+frac, 10)
	if u.Sign() == 0 {
		return nil, tally.Errorf(tally.EINVALID, "point value must be above zero")
	}
	return &PointValue{Currency: currency, unscaled: u, scale: len(frac)}, nil
}

// String is the value per point as given, without trailing zeros beyond the decimal point's need.
func (v *PointValue) String() string { return formatScaled(v.unscaled, v.scale, 0) }

// Of returns the money value of points, exact, with at least two decimals.
func (v *PointValue) Of(points int64) string {
	return formatScaled(new(big.Int).Mul(big.NewInt(points), v.unscaled), v.scale, 2)
}

// formatScaled writes n / 10^scale in decimal with at least minDecimals digits after the point.
func formatScaled(n *big.Int, scale, minDecimals int) string {
	if scale < minDecimals {
		n = new(big.Int).Mul(n, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(minDecimals-scale)), nil))
		scale = minDecimals
	}
	neg := n.Sign() < 0
	digits := new(big.Int).Abs(n).String()
	if scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if neg {
		return "-" + digits
	}
	return digits
}
