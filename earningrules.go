package tally

import (
	"context"
	"encoding/json"
	"time"
)

// RuleVersion is one version of an earning rule. Versions are never overwritten: an edit, or a
// deactivation, adds the next version, so that the version an accrual records can always be read back.
// Definition is the rule as package earning reads it (JSON); the store keeps it verbatim.
type RuleVersion struct {
	Name       string          `json:"name"`
	Version    int64           `json:"version"`
	Active     bool            `json:"active"`
	Definition json.RawMessage `json:"definition"`
	Actor      string          `json:"actor"`
	CreatedAt  time.Time       `json:"created_at"`
}

// AccrualRule is one rule's share of an accrual: the rule version that paid, and how much.
type AccrualRule struct {
	Seq     int64  `json:"-"`
	Rule    string `json:"rule"`
	Version int64  `json:"version"`
	Points  int64  `json:"points"`
}

// RuleUsage is what one rule has paid one customer within one cap period (day, week or month, starting
// at Start, UTC). Caps are checked against it under the customer's account lock.
type RuleUsage struct {
	AccountID string
	Rule      string
	Period    string // "day", "week" or "month"
	Start     time.Time
	Points    int64
}

// CustomerTier is a customer's stored tier. A customer without one holds the base tier.
type CustomerTier struct {
	AccountID string    `json:"-"`
	Tier      string    `json:"tier"`
	Since     time.Time `json:"since"`
	// ReviewedThrough is the end of the last period whose review looked at this customer (zero: none).
	ReviewedThrough time.Time `json:"reviewed_through"`
}

// TierChange records one change of a customer's tier and why.
type TierChange struct {
	AccountID string    `json:"-"`
	From      string    `json:"from"`
	To        string    `json:"to"`
	Reason    string    `json:"reason"`
	Seq       int64     `json:"transaction_id,omitempty"` // the accrual that raised the tier; 0 for a review
	At        time.Time `json:"at"`
}

// ProgrammeStore keeps the earning rules (versioned) and the customers' tiers. The ledger writes the
// per-accrual rows (accrual rules, cap usage, tiers) through WriteTx, inside the accrual's transaction;
// this interface reads them and administers the rules.
//
// Every method returns a *Error with code EUNAVAILABLE when the database cannot be reached or reports a
// transient fault.
type ProgrammeStore interface {
	// EarningRules returns the newest version of every rule (active or not), ordered by name.
	EarningRules(ctx context.Context) ([]RuleVersion, error)
	// RuleVersions returns every version of one rule, oldest first. ENOTFOUND when the rule has none.
	RuleVersions(ctx context.Context, name string) ([]RuleVersion, error)
	// AddRuleVersion stores v as the rule's next version (1 for a new rule) and returns it as stored.
	// When expected is not nil, the rule's newest version must be *expected (0: the rule must not exist
	// yet), else ECONFLICT; a concurrent AddRuleVersion of the same rule is ECONFLICT too. EINVALID for
	// an empty name or a definition that is not a JSON object.
	AddRuleVersion(ctx context.Context, v RuleVersion, expected *int64) (RuleVersion, error)
	// AccrualRules returns the rule lines recorded with a transaction, by rule name (none when it has none).
	AccrualRules(ctx context.Context, seq int64) ([]AccrualRule, error)
	// RuleUsageOf returns the usage rows of one customer whose period starts at or after since.
	RuleUsageOf(ctx context.Context, account string, since time.Time) ([]RuleUsage, error)
	// CustomerTier returns a customer's stored tier. ENOTFOUND when none is stored.
	CustomerTier(ctx context.Context, account string) (CustomerTier, error)
	// TierChanges returns a customer's tier changes, oldest first.
	TierChanges(ctx context.Context, account string) ([]TierChange, error)
	// QualifyingPoints returns the points a customer earned by accruals created in [since, until) that
	// were not reversed: redemptions and expiry do not lower them.
	QualifyingPoints(ctx context.Context, account string, since, until time.Time) (int64, error)
}

// TierWriteTx is the part of WriteTx that keeps earning-rule and tier rows within a ledger write. The
// customer accounts concerned must be locked first (LockAccounts): the account lock is what serialises
// every writer of these rows.
type TierWriteTx interface {
	// RuleUsage returns the usage rows of the given accounts (sorted) whose period starts at or after since.
	RuleUsage(ctx context.Context, accounts []string, since time.Time) ([]RuleUsage, error)
	// AddRuleUsage adds each row's Points to the stored row of its (account, rule, period, start),
	// creating it as needed.
	AddRuleUsage(ctx context.Context, usage []RuleUsage) error
	// InsertAccrualRules records the rule lines of accruals (after their transactions). ECONFLICT when a
	// (seq, rule) is recorded already.
	InsertAccrualRules(ctx context.Context, lines []AccrualRule) error
	// CustomerTiers returns the stored tiers of the given accounts (sorted); those without one are left out.
	CustomerTiers(ctx context.Context, accounts []string) (map[string]CustomerTier, error)
	// QualifyingPointsOf is ProgrammeStore.QualifyingPoints for several accounts (sorted), as this
	// transaction sees them (its own accruals included); accounts with none are left out.
	QualifyingPointsOf(ctx context.Context, accounts []string, since, until time.Time) (map[string]int64, error)
	// SetTiers stores tiers (insert or replace, by account) and appends changes to the tier history.
	SetTiers(ctx context.Context, tiers []CustomerTier, changes []TierChange) error
	// TiersToReview returns up to limit stored tiers other than base with account id > after, in id
	// order, whose ReviewedThrough is before periodEnd and whose Since is before periodEnd.
	TiersToReview(ctx context.Context, periodEnd time.Time, base, after string, limit int) ([]CustomerTier, error)
	// AccountsWithoutTier returns up to limit customer accounts with id > after, in id order, that have
	// no stored tier.
	AccountsWithoutTier(ctx context.Context, after string, limit int) ([]string, error)
}

// MaxRuleNameLen bounds a rule's name.
const MaxRuleNameLen = 100

// CheckRuleVersion is what every store checks before it stores a rule version.
func CheckRuleVersion(v RuleVersion) error {
	if v.Name == "" || len(v.Name) > MaxRuleNameLen {
		return Errorf(EINVALID, "a rule's name must be 1 to %d bytes", MaxRuleNameLen)
	}
	if err := CheckText("rule name", v.Name); err != nil {
		return err
	}
	if err := CheckText("actor", v.Actor); err != nil {
		return err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v.Definition, &obj); err != nil || obj == nil {
		return Errorf(EINVALID, "a rule's definition must be a JSON object")
	}
	return nil
}
