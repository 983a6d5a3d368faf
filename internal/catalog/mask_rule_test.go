package catalog_test

import (
	"testing"

	"govshare/internal/apperr"
)

// TestItemMaskRulesAreParsedByTheMaskingEngine: a data item's masking rule
// is read by internal/mask, refused with the catalog's own code and field,
// and kept in its canonical spelling.
func TestItemMaskRulesAreParsedByTheMaskingEngine(t *testing.T) {
	for _, rule := range []string{"keep(first)", "keep(6)", "keep(100,4)", "mask", "hash()", "replace()", "replace(123456789)"} {
		c := household()
		c.Items[2].MaskRule = rule
		ae, ok := apperr.As(c.Validate(false))
		if !ok || ae.Code != "catalog.item_mask_rule_invalid" || ae.Field != "items[2].mask_rule" {
			t.Errorf("%q: %v", rule, ae)
		}
	}
	for rule, want := range map[string]string{
		"":                "",
		"keep(6,4)":       "keep(6,4)",
		" keep( 6 , 4 ) ": "keep(6,4)",
		"keep（3，4）":       "keep(3,4)",
		"Surname":         "surname",
		"district":        "district",
		"hash":            "hash",
		"replace( *** )":  "replace(***)",
	} {
		c := household()
		c.Items[2].MaskRule = rule
		if err := c.Validate(false); err != nil {
			t.Errorf("%q: %v", rule, err)
		} else if c.Items[2].MaskRule != want {
			t.Errorf("%q kept as %q, want %q", rule, c.Items[2].MaskRule, want)
		}
	}
}
