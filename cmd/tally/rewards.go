package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/tally-ledger/tally"
)

// The rewards command administers the catalog on the database directly, also while servers run on it:
// every change is one transaction of the store, which redemptions in running servers serialise with
// (PostgreSQL row locks; SQLite's one writer, whose BUSY the store retries).

const rewardsSubcommands = "create, update, deactivate, activate, list, stock, coupons add, redemptions or retry"

func runRewards(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("rewards needs a subcommand: %s", rewardsSubcommands)
	}
	sub := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"create": rewardsCreate, "update": rewardsUpdate, "list": rewardsList, "stock": rewardsStock,
		"deactivate": func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			return rewardsSetActive(ctx, "deactivate", false, args, stdout, stderr)
		},
		"activate": func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			return rewardsSetActive(ctx, "activate", true, args, stdout, stderr)
		},
		"coupons": rewardsCoupons, "redemptions": rewardsRedemptions, "retry": rewardsRetry,
	}
	run, ok := sub[args[0]]
	if !ok {
		return fmt.Errorf("unknown rewards subcommand %q: expected %s", args[0], rewardsSubcommands)
	}
	return run(ctx, args[1:], stdout, stderr)
}

// openCatalog opens an existing database (a mistyped path is an error, not a new empty catalog) and
// applies pending migrations.
func openCatalog(ctx context.Context, url string) (*openedStore, error) {
	return openExistingMigrated(ctx, url)
}

// catalogError words a store error for the command line: the message alone for a refusal the caller
// can fix, the whole error for a fault.
func catalogError(cmd string, err error) error {
	switch tally.ErrorCode(err) {
	case tally.EINTERNAL, tally.EUNAVAILABLE:
		return fmt.Errorf("%s: %w", cmd, err)
	}
	return fmt.Errorf("%s: %s", cmd, tally.ErrorMessage(err))
}

// rewardFlags are the flags that describe a reward, shared by create and update.
type rewardFlags struct {
	fs                                                   *flag.FlagSet
	id, name, inventory, minTier, webhook, method, descr *string
	imageURL                                             *string
	cost                                                 *int64
}

func newRewardFlags(name string, stderr io.Writer) (*rewardFlags, *string) {
	fs, db := dbFlagSet(name, stderr)
	return &rewardFlags{
		fs:        fs,
		id:        fs.String("id", "", "reward id (required)"),
		name:      fs.String("name", "", "name shown to customers"),
		cost:      fs.Int64("cost", 0, "cost in points"),
		inventory: fs.String("inventory", "", `units in stock, or "unlimited"`),
		minTier:   fs.String("min-tier", "", "lowest tier that may redeem it (empty: any)"),
		webhook:   fs.String("webhook", "", "http(s) URL that fulfillment jobs are posted to"),
		method:    fs.String("method", "", "fulfillment: webhook, coupon, email or manual"),
		descr:     fs.String("description", "", "description shown to customers"),
		imageURL:  fs.String("image-url", "", "http(s) URL of the reward's picture"),
	}, db
}

// given reports whether the flag was on the command line.
func (f *rewardFlags) given(name string) bool { return flagGiven(f.fs, name) }

// apply copies the flags given onto r.
func (f *rewardFlags) apply(r *tally.Reward) error {
	for _, s := range []struct {
		flag string
		from *string
		to   *string
	}{
		{"name", f.name, &r.Name}, {"min-tier", f.minTier, &r.MinTier}, {"webhook", f.webhook, &r.WebhookURL},
		{"method", f.method, &r.FulfillmentMethod}, {"description", f.descr, &r.Description}, {"image-url", f.imageURL, &r.ImageURL},
	} {
		if f.given(s.flag) {
			*s.to = *s.from
		}
	}
	if f.given("cost") {
		r.PointCost = *f.cost
	}
	if f.given("inventory") {
		n, err := parseInventory(*f.inventory)
		if err != nil {
			return err
		}
		r.Inventory = n
	}
	return nil
}

// parseInventory reads --inventory: a number of units, or "unlimited".
func parseInventory(s string) (*int64, error) {
	if strings.EqualFold(strings.TrimSpace(s), "unlimited") {
		return nil, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 || n > tally.MaxAmount {
		return nil, fmt.Errorf(`--inventory must be a number of units from 0 to %d, or "unlimited"; got %q`, tally.MaxAmount, s)
	}
	return &n, nil
}

func rewardsCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, db := newRewardFlags("rewards create", stderr)
	if err := f.fs.Parse(args); err != nil {
		return errUsageShown
	}
	if err := noArgs(f.fs, "rewards create"); err != nil {
		return err
	}
	for _, req := range []string{"id", "name", "cost"} {
		if !f.given(req) {
			return fmt.Errorf("rewards create: --%s is required", req)
		}
	}
	r := tally.Reward{ID: *f.id, Active: true, FulfillmentMethod: tally.MethodManual}
	if f.given("webhook") {
		r.FulfillmentMethod = tally.MethodWebhook // a webhook names how the reward is fulfilled
	}
	if err := f.apply(&r); err != nil {
		return fmt.Errorf("rewards create: %w", err)
	}
	if err := r.Validate(); err != nil {
		return catalogError("rewards create", err)
	}
	s, err := openCatalog(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.CreateReward(ctx, r); err != nil {
		if tally.ErrorCode(err) == tally.ECONFLICT {
			return fmt.Errorf("rewards create: reward %q exists already: change it with tally rewards update", r.ID)
		}
		return catalogError("rewards create", err)
	}
	stored, err := findReward(ctx, s, r.ID)
	if err != nil {
		return catalogError("rewards create", err)
	}
	fmt.Fprintf(stdout, "created %s\n", describeReward(stored))
	return nil
}

func rewardsUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, db := newRewardFlags("rewards update", stderr)
	if err := f.fs.Parse(args); err != nil {
		return errUsageShown
	}
	if err := noArgs(f.fs, "rewards update"); err != nil {
		return err
	}
	if *f.id == "" {
		return fmt.Errorf("rewards update: --id is required")
	}
	changed := 0
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name != "id" && fl.Name != "db" {
			changed++
		}
	})
	if changed == 0 {
		return fmt.Errorf("rewards update: nothing to change: give --name, --cost, --inventory, --min-tier, --webhook, --method, --description or --image-url")
	}
	// Check the flags' own values before opening the database.
	if err := f.apply(&tally.Reward{}); err != nil {
		return fmt.Errorf("rewards update: %w", err)
	}
	return updateReward(ctx, *db, "rewards update", *f.id, stdout, func(r *tally.Reward) error {
		if err := f.apply(r); err != nil {
			return err
		}
		return r.Validate()
	})
}

// updateReward changes a reward under its lock (only what fn changes) and prints it.
func updateReward(ctx context.Context, db, cmd, id string, stdout io.Writer, fn func(*tally.Reward) error) error {
	s, err := openCatalog(ctx, db)
	if err != nil {
		return err
	}
	defer s.Close()
	r, err := s.UpdateReward(ctx, id, fn)
	if err != nil {
		return catalogError(cmd, err)
	}
	fmt.Fprintf(stdout, "updated %s\n", describeReward(r))
	return nil
}

func rewardsSetActive(ctx context.Context, verb string, active bool, args []string, stdout, stderr io.Writer) error {
	cmd := "rewards " + verb
	fs, db := dbFlagSet(cmd, stderr)
	id := fs.String("id", "", "reward id (required)")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if err := noArgs(fs, cmd); err != nil {
		return err
	}
	if *id == "" {
		return fmt.Errorf("%s: --id is required", cmd)
	}
	return updateReward(ctx, *db, cmd, *id, stdout, func(r *tally.Reward) error {
		r.Active = active
		return nil
	})
}

// catalogRow is a reward as list shows it, with its coupon codes counted.
type catalogRow struct {
	tally.Reward
	CouponsFree     *int `json:"coupons_free,omitempty"`
	CouponsAssigned *int `json:"coupons_assigned,omitempty"`
}

func rewardsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("rewards list", stderr)
	asJSON := fs.Bool("json", false, "print the catalog as JSON")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if err := noArgs(fs, "rewards list"); err != nil {
		return err
	}
	s, err := openCatalog(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	rewards, err := s.Rewards(ctx)
	if err != nil {
		return catalogError("rewards list", err)
	}
	counts, err := s.CouponCounts(ctx)
	if err != nil {
		return catalogError("rewards list", err)
	}
	rows := make([]catalogRow, 0, len(rewards))
	for _, r := range rewards {
		row := catalogRow{Reward: r}
		if c, ok := counts[r.ID]; ok || r.FulfillmentMethod == tally.MethodCoupon {
			row.CouponsFree, row.CouponsAssigned = &c.Free, &c.Assigned
		}
		rows = append(rows, row)
	}
	if *asJSON {
		return printJSON(stdout, rows)
	}
	tw := newTable(stdout, "REWARD_ID", "NAME", "COST", "STOCK", "METHOD", "MIN_TIER", "ACTIVE", "CODES_FREE")
	for _, r := range rows {
		codes := "-"
		if r.CouponsFree != nil {
			codes = strconv.Itoa(*r.CouponsFree)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%t\t%s\n", r.ID, r.Name, r.PointCost, stockOf(r.Reward),
			r.FulfillmentMethod, dash(r.MinTier), r.Active, codes)
	}
	return tw.Flush()
}

func rewardsStock(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("rewards stock", stderr)
	id := fs.String("id", "", "reward id (required)")
	set := fs.String("set", "", "units left now: a stock counted anew (overwrites what redemptions took meanwhile)")
	add := fs.Int64("add", 0, "units to add (negative to remove); adds to what concurrent redemptions leave")
	unlimited := fs.Bool("unlimited", false, "lift the limit")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if err := noArgs(fs, "rewards stock"); err != nil {
		return err
	}
	if *id == "" {
		return fmt.Errorf("rewards stock: --id is required")
	}
	given := 0
	for _, name := range []string{"set", "add", "unlimited"} {
		if flagGiven(fs, name) {
			given++
		}
	}
	var n *int64
	switch {
	case given != 1:
		return fmt.Errorf("rewards stock: give exactly one of --set N, --add N or --unlimited")
	case flagGiven(fs, "set"):
		v, err := strconv.ParseInt(strings.TrimSpace(*set), 10, 64)
		if err != nil || v < 0 || v > tally.MaxAmount {
			return fmt.Errorf("rewards stock: --set must be a number of units from 0 to %d; got %q", tally.MaxAmount, *set)
		}
		n = &v
	case flagGiven(fs, "unlimited") && !*unlimited:
		return fmt.Errorf("rewards stock: to limit the stock, --set a number of units")
	case flagGiven(fs, "add") && *add == 0:
		return fmt.Errorf("rewards stock: --add must not be zero")
	}
	s, err := openCatalog(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	var r tally.Reward
	if *add != 0 {
		r, err = s.AddStock(ctx, *id, *add)
	} else {
		r, err = s.SetInventory(ctx, *id, n)
	}
	if err != nil {
		return catalogError("rewards stock", err)
	}
	fmt.Fprintf(stdout, "reward %s: stock %s\n", r.ID, stockOf(r))
	return nil
}

// findReward reads one reward of the catalog. ENOTFOUND when absent.
func findReward(ctx context.Context, s tally.Store, id string) (tally.Reward, error) {
	rewards, err := s.Rewards(ctx)
	if err != nil {
		return tally.Reward{}, err
	}
	for _, r := range rewards {
		if r.ID == id {
			return r, nil
		}
	}
	return tally.Reward{}, tally.Errorf(tally.ENOTFOUND, "no reward %q", id)
}

// describeReward is a reward on one line.
func describeReward(r tally.Reward) string {
	state := "active"
	if !r.Active {
		state = "inactive"
	}
	tier := ""
	if r.MinTier != "" {
		tier = ", tier " + r.MinTier + " and above"
	}
	return fmt.Sprintf("reward %s (%s): %d points, stock %s, %s%s, %s", r.ID, r.Name, r.PointCost, stockOf(r), r.FulfillmentMethod, tier, state)
}

func stockOf(r tally.Reward) string {
	if r.Inventory == nil {
		return "unlimited"
	}
	return strconv.FormatInt(*r.Inventory, 10)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLineText keeps a stored message on one table line.
func oneLineText(s string) string { return strings.Join(strings.Fields(s), " ") }
