package tally_test

import (
	"testing"

	"github.com/tally-ledger/tally"
)

func TestCheckText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // the message, or "" when the text is taken
	}{
		{"", ""},
		{"plain", ""},
		{"café ☕ 😀", ""},
		{"\uFFFD", ""}, // a replacement character written as such is text
		{"a\x00b", "f contains a NUL character"},
		{"\x00", "f contains a NUL character"},
		{"a\xffb", "f is not valid UTF-8"},
		{"\xed\xa0\x80", "f is not valid UTF-8"}, // UTF-8 of a surrogate (CESU-8)
		{"\xc0\x80", "f is not valid UTF-8"},     // overlong NUL (Java's modified UTF-8)
		{"\xe2\x82", "f is not valid UTF-8"},     // truncated
	} {
		err := tally.CheckText("f", tc.in)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("CheckText(%q) = %v, want nil", tc.in, err)
		case tc.want != "" && (tally.ErrorCode(err) != tally.EINVALID || tally.ErrorMessage(err) != tc.want):
			t.Errorf("CheckText(%q) = %v, want EINVALID %q", tc.in, err, tc.want)
		}
	}
}

func TestRewardAndClientCheckText(t *testing.T) {
	ok := tally.Reward{ID: "r", Name: "n", MinTier: "gold", FulfillmentMethod: "webhook", WebhookURL: "https://x"}
	if err := ok.CheckText(); err != nil {
		t.Fatal(err)
	}
	for _, set := range []func(*tally.Reward){
		func(r *tally.Reward) { r.ID = "a\x00" }, func(r *tally.Reward) { r.Name = "\xff" },
		func(r *tally.Reward) { r.MinTier = "\x00" }, func(r *tally.Reward) { r.FulfillmentMethod = "\xff" },
		func(r *tally.Reward) { r.WebhookURL = "https://x/\x00" },
	} {
		r := ok
		set(&r)
		if tally.ErrorCode(r.CheckText()) != tally.EINVALID {
			t.Errorf("%+v: CheckText = %v", r, r.CheckText())
		}
	}
	c := tally.Client{ID: "c", Name: "n", SecretHash: "h", Scopes: []string{"admin"}}
	if err := c.CheckText(); err != nil {
		t.Fatal(err)
	}
	for _, set := range []func(*tally.Client){
		func(c *tally.Client) { c.ID = "\x00" }, func(c *tally.Client) { c.Name = "\xff" },
		func(c *tally.Client) { c.SecretHash = "\x00" }, func(c *tally.Client) { c.Scopes = []string{"admin", "\xff"} },
	} {
		bad := c
		set(&bad)
		if tally.ErrorCode(bad.CheckText()) != tally.EINVALID {
			t.Errorf("%+v: CheckText = %v", bad, bad.CheckText())
		}
	}
}
