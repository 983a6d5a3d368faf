package catalog_test

import (
	"strings"
	"testing"

	"govshare/internal/apperr"
)

// TestItemQualityRulesAreParsed: a data item's quality rule is checked
// when the entry is saved, and the error names the item and the rule.
func TestItemQualityRulesAreParsed(t *testing.T) {
	for _, rule := range []string{"required;citizen", "range:9..1", "regex:[0-9", "code"} {
		c := household()
		c.Items[1].QualityRule = rule
		ae, ok := apperr.As(c.Validate(false))
		if !ok || ae.Code != "catalog.item_quality_rule_invalid" || ae.Field != "items[1].quality_rule" || !strings.Contains(ae.ZH, "质量规则") {
			t.Errorf("%q: %v", rule, ae)
		}
	}
	for _, rule := range []string{"", "required;citizen_id", "code:GB/T 2261.1", "region;unique", "date_range:1900-01-01..today"} {
		c := household()
		c.Items[1].QualityRule = rule
		if err := c.Validate(false); err != nil {
			t.Errorf("%q: %v", rule, err)
		}
	}
}
