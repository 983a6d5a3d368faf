package catalog

import (
	"fmt"
	"strings"
)

// Change is one difference between two versions of an entry.
type Change struct {
	Field string `json:"field" doc:"字段 / field (items.<machine_name>.<attribute> for data items)"`
	Old   string `json:"old"`
	New   string `json:"new"`
}

func join[T ~string](xs []T) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = string(x)
	}
	return strings.Join(s, "、")
}

func (c Content) fields() [][2]string {
	return [][2]string{
		{"name", c.Name}, {"class_code", c.ClassCode}, {"abstract", c.Abstract}, {"format_class", c.FormatClass},
		{"format_type", c.FormatType}, {"keywords", join(c.Keywords)}, {"share_type", string(c.ShareType)},
		{"share_condition", c.ShareCondition}, {"share_basis", c.ShareBasis}, {"share_methods", join(c.ShareMethods)},
		{"open_type", string(c.OpenType)}, {"open_condition", c.OpenCondition}, {"update_cycle", c.UpdateCycle},
		{"related_codes", join(c.RelatedCodes)}, {"classified", fmt.Sprint(c.Classified)},
	}
}

func (it DataItem) fields() [][2]string {
	return [][2]string{
		{"name", it.Name}, {"data_type", it.DataType}, {"length", fmt.Sprint(it.Length)}, {"key", fmt.Sprint(it.Key)},
		{"description", it.Description}, {"sensitivity", it.Sensitivity}, {"mask_rule", it.MaskRule}, {"quality_rule", it.QualityRule},
	}
}

// DiffFields lists what changed from a to b, field by field; data items
// are matched by machine name, so an added, removed or changed item each
// shows as its own change.
func DiffFields(a, b Content) []Change {
	var out []Change
	fa, fb := a.fields(), b.fields()
	for i := range fa {
		if fa[i][1] != fb[i][1] {
			out = append(out, Change{Field: fa[i][0], Old: fa[i][1], New: fb[i][1]})
		}
	}
	ai := map[string]DataItem{}
	for _, it := range a.Items {
		ai[it.MachineName] = it
	}
	bi := map[string]bool{}
	for _, it := range b.Items {
		bi[it.MachineName] = true
		old, ok := ai[it.MachineName]
		if !ok {
			out = append(out, Change{Field: "items." + it.MachineName, New: it.Name + " (" + it.DataType + fmt.Sprint(it.Length) + ")"})
			continue
		}
		fo, fn := old.fields(), it.fields()
		for i := range fo {
			if fo[i][1] != fn[i][1] {
				out = append(out, Change{Field: "items." + it.MachineName + "." + fo[i][0], Old: fo[i][1], New: fn[i][1]})
			}
		}
	}
	for _, it := range a.Items {
		if !bi[it.MachineName] {
			out = append(out, Change{Field: "items." + it.MachineName, Old: it.Name + " (" + it.DataType + fmt.Sprint(it.Length) + ")"})
		}
	}
	return out
}
