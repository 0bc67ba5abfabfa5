package tally

import (
	"strings"
	"unicode/utf8"
)

// CheckText refuses, with EINVALID naming the field, a caller's text that a store cannot keep as given:
// bytes that are not UTF-8 (PostgreSQL rejects them with an error, SQLite keeps them, and encoding/json
// turns each into U+FFFD on the way out, so that two different values read back alike) and NUL
// (PostgreSQL's text cannot hold it at all). Every adapter calls it before text reaches SQL, so that bad
// text is refused alike on every store, whichever route it came by.
func CheckText(field, s string) error {
	if !utf8.ValidString(s) {
		return Errorf(EINVALID, "%s is not valid UTF-8", field)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return Errorf(EINVALID, "%s contains a NUL character", field)
	}
	return nil
}

// CheckText checks every text field of a reward with the package's CheckText.
func (r Reward) CheckText() error {
	for _, f := range [...]struct{ name, value string }{
		{"reward_id", r.ID}, {"name", r.Name}, {"description", r.Description}, {"image_url", r.ImageURL}, {"min_tier", r.MinTier},
		{"fulfillment_method", r.FulfillmentMethod}, {"webhook_url", r.WebhookURL},
	} {
		if err := CheckText(f.name, f.value); err != nil {
			return err
		}
	}
	return nil
}

// CheckText checks every text field of a client with the package's CheckText.
func (c Client) CheckText() error {
	for _, f := range [...]struct{ name, value string }{{"client id", c.ID}, {"client name", c.Name}, {"secret hash", c.SecretHash}} {
		if err := CheckText(f.name, f.value); err != nil {
			return err
		}
	}
	for _, s := range c.Scopes {
		if err := CheckText("scope", s); err != nil {
			return err
		}
	}
	return nil
}
