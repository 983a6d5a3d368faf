// Package catalog is the resource catalog (目录体系): the classification
// tree, catalog entries with their data items, the review workflow from
// draft to publication, resource codes, and every published version.
// Departments' data administrators describe what they hold; platform
// administrators review and publish; everyone finds it.
package catalog

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"govshare/internal/apperr"
	"govshare/internal/mask"
	"govshare/internal/quality"
)

// ShareType is 共享类型.
type ShareType string

// Share types.
const (
	ShareUnconditional ShareType = "unconditional" // 无条件共享
	ShareConditional   ShareType = "conditional"   // 有条件共享
	ShareNone          ShareType = "none"          // 不予共享
)

// ShareMethod is 共享方式.
type ShareMethod string

// Share methods.
const (
	MethodAPI      ShareMethod = "api"      // 接口
	MethodFile     ShareMethod = "file"     // 文件下载
	MethodExchange ShareMethod = "exchange" // 数据库交换
	MethodVerify   ShareMethod = "verify"   // 比对核验
)

// OpenType is 开放类型.
type OpenType string

// Open types.
const (
	OpenUnconditional OpenType = "open"       // 无条件开放
	OpenOnRequest     OpenType = "on_request" // 依申请开放
	OpenClosed        OpenType = "closed"     // 不予开放
)

// UpdateCycles are 更新周期 values with their DCAT accrualPeriodicity.
var UpdateCycles = map[string]string{
	"realtime": "CONT", "daily": "DAILY", "weekly": "WEEKLY", "monthly": "MONTHLY", "quarterly": "QUARTERLY",
	"half_yearly": "BIANNUAL", "yearly": "ANNUAL", "other": "IRREG",
}

// FormatTypes are the resource formats by class (信息资源格式).
var FormatTypes = map[string][]string{
	"file":            {"ofd", "wps", "xml", "txt", "doc", "docx", "html", "pdf", "ppt"},
	"spreadsheet":     {"et", "xls", "xlsx"},
	"database":        {"dm", "kingbase", "oracle", "sqlserver", "db2", "mysql", "postgresql", "other"},
	"image":           {"jpg", "gif", "bmp", "png"},
	"streaming":       {"mp4", "flv", "other"},
	"api":             {"rest", "soap", "other"},
	"self_describing": {"json", "xml", "other"},
	"other":           {"other"},
}

// DataTypes are the data item types of the catalog guide: C character,
// N numeric, Y currency, D date, T datetime, L logical, M memo, G binary,
// B double, I integer, F float.
const DataTypes = "CNYDTLMGBIF"

// Sensitivity levels of a data item.
var Sensitivities = []string{"public", "internal", "sensitive", "secret"}

// DataItem is one field of a resource (信息项).
type DataItem struct {
	Name        string `json:"name" doc:"信息项名称 / item name"`
	MachineName string `json:"machine_name" doc:"字段名(小写字母开头) / machine name" pattern:"^[a-z][a-z0-9_]{0,62}$"`
	DataType    string `json:"data_type" doc:"数据类型 C/N/Y/D/T/L/M/G/B/I/F / data type" enum:"C,N,Y,D,T,L,M,G,B,I,F"`
	Length      int    `json:"length" doc:"长度 / length"`
	Key         bool   `json:"key,omitempty" doc:"是否主键 / part of the key"`
	Description string `json:"description,omitempty" doc:"说明 / description"`
	Sensitivity string `json:"sensitivity,omitempty" doc:"敏感级别 public/internal/sensitive/secret"`
	MaskRule    string `json:"mask_rule,omitempty" doc:"脱敏规则，如 keep(6,4)、surname、district、hash、replace(*) / masking rule"`
	QualityRule string `json:"quality_rule,omitempty" doc:"质量规则，如 required;citizen_id / quality rule"`
}

// Content is everything a data administrator describes about a resource;
// each published version keeps one.
type Content struct {
	Name           string        `json:"name" doc:"信息资源名称 / resource name"`
	ClassCode      string        `json:"class_code" doc:"信息资源分类代码 / classification code"`
	Abstract       string        `json:"abstract" doc:"信息资源摘要 / abstract"`
	FormatClass    string        `json:"format_class" doc:"格式分类 / format class"`
	FormatType     string        `json:"format_type" doc:"格式类型 / format type"`
	Keywords       []string      `json:"keywords,omitempty" doc:"关键字 / keywords"`
	Items          []DataItem    `json:"items" doc:"信息项 / data items"`
	ShareType      ShareType     `json:"share_type" enum:"unconditional,conditional,none" doc:"共享类型 / share type"`
	ShareCondition string        `json:"share_condition,omitempty" doc:"共享条件(有条件共享必填) / condition"`
	ShareBasis     string        `json:"share_basis,omitempty" doc:"不予共享的依据(法律、行政法规或政策) / legal basis for not sharing"`
	ShareMethods   []ShareMethod `json:"share_methods,omitempty" doc:"共享方式 api/file/exchange/verify / share methods"`
	OpenType       OpenType      `json:"open_type" enum:"open,on_request,closed" doc:"开放类型 / open type"`
	OpenCondition  string        `json:"open_condition,omitempty" doc:"开放条件 / open condition"`
	UpdateCycle    string        `json:"update_cycle" doc:"更新周期 / update cycle"`
	RelatedCodes   []string      `json:"related_codes,omitempty" doc:"关联资源代码 / related resource codes"`
	Classified     bool          `json:"classified,omitempty" doc:"涉密 / classified (internal network only)"`
}

var machineNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

func invalid(code, field, zh, en string) *apperr.Error { return apperr.Invalid(code, field, zh, en) }

// Validate checks every field, returning the first problem with its field
// named (items as "items[2].machine_name"). external is true on an
// external-network deployment, where classified entries are refused.
func (c *Content) Validate(external bool) error {
	c.normalize()
	switch {
	case c.Name == "" || utf8.RuneCountInString(c.Name) > 100:
		return invalid("catalog.name_invalid", "name", "信息资源名称不能为空，且不超过100个字符", "the name is required, at most 100 characters")
	case c.ClassCode == "":
		return invalid("catalog.class_required", "class_code", "请选择信息资源分类", "choose a classification")
	case c.Abstract == "" || utf8.RuneCountInString(c.Abstract) > 2000:
		return invalid("catalog.abstract_invalid", "abstract", "摘要不能为空，且不超过2000个字符", "the abstract is required, at most 2000 characters")
	}
	types, ok := FormatTypes[c.FormatClass]
	if !ok {
		return invalid("catalog.format_class_invalid", "format_class", "信息资源格式分类无效", "unknown format class")
	}
	if !slices.Contains(types, c.FormatType) {
		return invalid("catalog.format_type_invalid", "format_type", "格式类型与格式分类不符，可选："+strings.Join(types, "、"), "the format type does not belong to the class; one of: "+strings.Join(types, ", "))
	}
	if len(c.Keywords) > 20 {
		return invalid("catalog.keywords_too_many", "keywords", "关键字最多20个", "at most 20 keywords")
	}
	if len(c.Items) == 0 {
		return invalid("catalog.items_required", "items", "至少需要一个信息项", "at least one data item is required")
	}
	seen := map[string]bool{}
	for i := range c.Items {
		if err := c.Items[i].validate(fmt.Sprintf("items[%d].", i)); err != nil {
			return err
		}
		if seen[c.Items[i].MachineName] {
			return invalid("catalog.item_duplicate", fmt.Sprintf("items[%d].machine_name", i), "字段名重复："+c.Items[i].MachineName, "duplicate machine name: "+c.Items[i].MachineName)
		}
		seen[c.Items[i].MachineName] = true
	}
	switch c.ShareType {
	case ShareUnconditional:
	case ShareConditional:
		if c.ShareCondition == "" {
			return invalid("catalog.share_condition_required", "share_condition", "有条件共享须填写共享条件", "a conditional resource needs its condition")
		}
	case ShareNone:
		if c.ShareBasis == "" {
			return invalid("catalog.share_basis_required", "share_basis", "不予共享须填写法律、行政法规或政策依据", "a resource not shared needs its legal basis")
		}
	default:
		return invalid("catalog.share_type_invalid", "share_type", "共享类型无效", "unknown share type")
	}
	if c.ShareType != ShareNone && len(c.ShareMethods) == 0 {
		return invalid("catalog.share_method_required", "share_methods", "请选择至少一种共享方式", "choose at least one share method")
	}
	for _, m := range c.ShareMethods {
		if m != MethodAPI && m != MethodFile && m != MethodExchange && m != MethodVerify {
			return invalid("catalog.share_method_invalid", "share_methods", "共享方式无效："+string(m), "unknown share method: "+string(m))
		}
	}
	switch c.OpenType {
	case OpenUnconditional, OpenClosed:
	case OpenOnRequest:
		if c.OpenCondition == "" {
			return invalid("catalog.open_condition_required", "open_condition", "依申请开放须填写开放条件", "open-on-request needs its condition")
		}
	default:
		return invalid("catalog.open_type_invalid", "open_type", "开放类型无效", "unknown open type")
	}
	if c.Classified && c.OpenType != OpenClosed {
		return invalid("catalog.classified_open", "open_type", "涉密信息资源不得开放", "a classified resource cannot be open")
	}
	if _, ok := UpdateCycles[c.UpdateCycle]; !ok {
		return invalid("catalog.update_cycle_invalid", "update_cycle", "更新周期无效", "unknown update cycle")
	}
	for i, rc := range c.RelatedCodes {
		if !strings.Contains(rc, "/") {
			return invalid("catalog.related_code_invalid", fmt.Sprintf("related_codes[%d]", i), "关联资源代码格式无效："+rc, "malformed related resource code: "+rc)
		}
	}
	if c.Classified && external {
		return invalid("catalog.classified_on_external", "classified", "外网部署不得登记涉密信息资源", "classified resources cannot be registered on an external-network deployment")
	}
	return nil
}

func (c *Content) normalize() {
	c.Name = strings.TrimSpace(c.Name)
	c.Abstract = strings.TrimSpace(c.Abstract)
	c.ClassCode = strings.TrimSpace(c.ClassCode)
	c.FormatClass = strings.TrimSpace(c.FormatClass)
	c.FormatType = strings.ToLower(strings.TrimSpace(c.FormatType))
	c.ShareCondition = strings.TrimSpace(c.ShareCondition)
	c.ShareBasis = strings.TrimSpace(c.ShareBasis)
	c.OpenCondition = strings.TrimSpace(c.OpenCondition)
	var kws []string
	for _, k := range c.Keywords {
		if k = strings.TrimSpace(k); k != "" && !slices.Contains(kws, k) {
			kws = append(kws, k)
		}
	}
	c.Keywords = kws
	slices.Sort(c.ShareMethods)
	c.ShareMethods = slices.Compact(c.ShareMethods)
	if c.ShareType == ShareNone {
		c.ShareMethods = nil
	}
}

func (it *DataItem) validate(prefix string) error {
	it.Name = strings.TrimSpace(it.Name)
	it.MachineName = strings.TrimSpace(it.MachineName)
	it.DataType = strings.ToUpper(strings.TrimSpace(it.DataType))
	switch {
	case it.Name == "" || utf8.RuneCountInString(it.Name) > 64:
		return invalid("catalog.item_name_invalid", prefix+"name", "信息项名称不能为空，且不超过64个字符", "the item name is required, at most 64 characters")
	case !machineNameRE.MatchString(it.MachineName):
		return invalid("catalog.item_machine_name_invalid", prefix+"machine_name", "字段名须以小写字母开头，只含小写字母、数字和下划线，不超过63位", "the machine name starts with a lower-case letter and has only a–z, 0–9 and _, at most 63")
	case len(it.DataType) != 1 || !strings.Contains(DataTypes, it.DataType):
		return invalid("catalog.item_type_invalid", prefix+"data_type", "数据类型应为 C/N/Y/D/T/L/M/G/B/I/F 之一", "the data type is one of C/N/Y/D/T/L/M/G/B/I/F")
	case it.Length <= 0 || it.Length > 100000:
		return invalid("catalog.item_length_invalid", prefix+"length", "长度应为1到100000之间的整数", "the length is a whole number from 1 to 100000")
	case it.Sensitivity != "" && !slices.Contains(Sensitivities, it.Sensitivity):
		return invalid("catalog.item_sensitivity_invalid", prefix+"sensitivity", "敏感级别应为 public/internal/sensitive/secret", "sensitivity is public, internal, sensitive or secret")
	}
	rule, err := mask.Parse(it.MaskRule)
	if err != nil {
		return invalid("catalog.item_mask_rule_invalid", prefix+"mask_rule", "脱敏规则无效，可用：keep(m,n)、surname、district、hash、replace(字符)", "unknown masking rule; use keep(m,n), surname, district, hash or replace(c)")
	}
	it.MaskRule = rule.String() // kept in the one spelling every reader parses back
	if err := quality.Parse(it.QualityRule); err != nil {
		var re *quality.RuleError
		errors.As(err, &re)
		return invalid("catalog.item_quality_rule_invalid", prefix+"quality_rule", "质量规则“"+re.Part+"”无效："+re.ZH, "invalid quality rule "+strconv.Quote(re.Part)+": "+re.EN)
	}
	return nil
}
