package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api"
)

// redemptionRow is a redemption as the redemptions command prints it in JSON.
type redemptionRow struct {
	ReceiptID     string     `json:"receipt_id"`
	TransactionID int64      `json:"transaction_id"`
	CustomerHash  string     `json:"customer_hash"`
	RewardID      string     `json:"reward_id"`
	Points        int64      `json:"points_debited"`
	Method        string     `json:"method"`
	Status        string     `json:"status"`
	CouponCode    string     `json:"coupon_code,omitempty"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	LastError     string     `json:"last_error,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
}

func rowOf(r tally.Redemption) redemptionRow {
	row := redemptionRow{r.ReceiptID, r.TxSeq, api.PublicHash(r.AccountID), r.RewardID, r.Points, r.Method, r.Status,
		r.CouponCode, r.Attempts, nil, r.LastError, r.CreatedAt}
	if r.Status == tally.FulfillmentPending {
		next := r.NextAttemptAt
		row.NextAttemptAt = &next
	}
	return row
}

// rewardsRedemptions is `tally rewards redemptions`: the fulfillment queue, dead letters included, newest
// first, a page at a time.
func rewardsRedemptions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("rewards redemptions", stderr)
	status := fs.String("status", "", "only this state: pending, delivered, manual, dead (the dead letters) or refunded")
	reward := fs.String("reward", "", "only this reward id")
	limit := fs.Int("limit", 50, fmt.Sprintf("at most this many, newest first (1-%d)", tally.MaxRedemptionPage))
	cursor := fs.String("cursor", "", "continue after the listing that printed this cursor")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if err := noArgs(fs, "rewards redemptions"); err != nil {
		return err
	}
	f := tally.RedemptionFilter{Status: *status, RewardID: *reward, Limit: *limit}
	if *cursor != "" {
		c, err := tally.ParseRedemptionCursor(*cursor)
		if err != nil {
			return fmt.Errorf("rewards redemptions: --cursor is malformed")
		}
		f.After = &c
	}
	if err := f.Check(); err != nil {
		return catalogError("rewards redemptions", err)
	}
	s, err := openCatalog(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	rs, err := s.Redemptions(ctx, f)
	if err != nil {
		return catalogError("rewards redemptions", err)
	}
	next := ""
	if len(rs) == f.Limit {
		next = tally.CursorOf(rs[len(rs)-1]).Encode()
	}
	if *asJSON {
		out := struct {
			Redemptions []redemptionRow `json:"redemptions"`
			NextCursor  string          `json:"next_cursor,omitempty"`
		}{Redemptions: []redemptionRow{}, NextCursor: next}
		for _, r := range rs {
			out.Redemptions = append(out.Redemptions, rowOf(r))
		}
		return printJSON(stdout, out)
	}
	tw := newTable(stdout, "RECEIPT_ID", "REWARD_ID", "POINTS", "STATUS", "ATTEMPTS", "CREATED", "LAST_ERROR")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", r.ReceiptID, r.RewardID, r.Points, r.Status, r.Attempts,
			r.CreatedAt.Format(time.RFC3339), dash(oneLineText(r.LastError)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(stdout, "more: --cursor %s\n", next)
	}
	return nil
}

// rewardsRetry is `tally rewards retry RECEIPT_ID`: a dead letter queued again.
func rewardsRetry(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("rewards retry", stderr)
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("rewards retry: name one receipt_id (see tally rewards redemptions --status dead)")
	}
	s, err := openCatalog(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	r, err := s.RetryRedemption(ctx, fs.Arg(0), time.Now().UTC())
	if err != nil {
		return catalogError("rewards retry", err)
	}
	fmt.Fprintf(stdout, "redemption %s of %s is pending again: the fulfillment worker delivers it next\n", r.ReceiptID, r.RewardID)
	return nil
}
