package demo

import (
	"context"
	"fmt"
	"strings"

	"govshare/internal/catalog"
	"govshare/internal/identity"
	"govshare/internal/policy"
)

// item is a compact data item: "名称|machine_name|type|length[|key][|mask:rule][|q:rule]".
type demoEntry struct {
	dept, name, class, abstract, cycle, share, open string
	methods                                         []catalog.ShareMethod
	keywords                                        []string
	items                                           []string
}

// demoCatalog is the catalog the regulations name (Fuzhou art. 8–19 and
// Haizhu), spread over the demo departments.
var demoCatalog = []demoEntry{
	{"gaj", "户籍登记信息", "101", "本市户籍人口的户籍登记信息，由公安机关采集、核准和提供。", "daily", "conditional", "closed",
		[]catalog.ShareMethod{"api", "verify", "exchange"}, []string{"户籍", "人口", "身份"},
		[]string{"公民身份号码|citizen_id|C|18|key|mask:keep(6,4)|q:required;citizen_id", "姓名|name|C|50|mask:surname|q:required", "性别|sex|C|1|q:code:GB/T 2261.1",
			"出生日期|birth_date|D|8", "籍贯|native_place|C|100", "民族|ethnicity|C|2", "户籍地址|household_address|C|200|mask:district",
			"户籍地派出所|police_station|C|100", "户籍信息状态|status|C|2"}},
	{"gaj", "居住证登记信息", "101", "在本市办理居住证的流动人口登记信息。", "daily", "conditional", "closed",
		[]catalog.ShareMethod{"api", "verify"}, []string{"居住证", "流动人口"},
		[]string{"居住证号码|permit_no|C|20|key", "姓名|name|C|50|mask:surname", "身份证件类型|id_type|C|2", "身份证件号码|id_no|C|18|mask:keep(6,4)|q:citizen_id",
			"居住地址详址|residence_address|C|200|mask:district", "居住地派出所|police_station|C|100", "居住证发证时间|issued_at|T|14", "登记机关|authority|C|100",
			"登记机关行政区划|authority_region|C|6|q:region", "注销日期|cancelled_on|D|8"}},
	{"mzj", "婚姻登记信息", "101", "在民政部门办理的结婚、离婚登记信息。", "daily", "conditional", "closed",
		[]catalog.ShareMethod{"verify"}, []string{"婚姻", "结婚", "离婚"},
		[]string{"公民身份号码|citizen_id|C|18|key|mask:keep(6,4)|q:citizen_id", "结婚登记日期|marriage_date|D|8", "离婚登记日期|divorce_date|D|8",
			"婚姻状况|marital_status|C|2", "发证机关名称|authority|C|100", "发证机关行政区划|authority_region|C|6|q:region"}},
	{"mzj", "收养登记信息", "101", "在民政部门办理的收养登记信息。", "monthly", "conditional", "closed",
		[]catalog.ShareMethod{"verify"}, []string{"收养"},
		[]string{"收养证号|adoption_no|C|30|key", "发证机关名称|authority|C|100", "发证机关行政区划|authority_region|C|6"}},
	{"wjw", "出生医学证明信息", "101", "医疗机构签发的出生医学证明信息。", "daily", "conditional", "closed",
		[]catalog.ShareMethod{"api", "verify"}, []string{"出生", "新生儿", "医学证明"},
		[]string{"出生医学证号|certificate_no|C|20|key", "新生儿姓名|newborn_name|C|50|mask:surname", "性别|sex|C|1", "健康状况|health|C|10",
			"母亲姓名|mother_name|C|50|mask:surname", "父亲姓名|father_name|C|50|mask:surname", "出生日期|birth_date|D|8", "证明发出单位|issuer|C|100"}},
	{"rsj", "社会保障信息", "202", "个人参保、缴费及社保登记信息。", "monthly", "conditional", "closed",
		[]catalog.ShareMethod{"api", "exchange", "verify"}, []string{"社保", "参保", "就业"},
		[]string{"公民身份号码|citizen_id|C|18|key|mask:keep(6,4)|q:citizen_id", "个人社保号|insurance_no|C|30", "从业状况|employment|C|2",
			"个人参保状况|insured_status|C|2", "险种类型|insurance_type|C|10", "个人参保日期|insured_on|D|8", "个人停保日期|stopped_on|D|8",
			"工作单位名称|employer|C|200", "工作单位社保号|employer_no|C|30"}},
	{"jyj", "学籍信息", "212", "中小学学生学籍信息。", "quarterly", "conditional", "closed",
		[]catalog.ShareMethod{"api", "verify"}, []string{"学籍", "学生", "教育"},
		[]string{"学籍号|student_no|C|30|key", "学生姓名|name|C|50|mask:surname", "性别|sex|C|1", "出生日期|birth_date|D|8", "入学时间|enrolled_on|D|8",
			"入读学校|school|C|200", "毕业时间|graduated_on|D|8", "学历|education|C|10"}},
	{"cl", "残疾人证信息", "101", "残疾人证的核发与注销信息。", "monthly", "conditional", "closed",
		[]catalog.ShareMethod{"verify"}, []string{"残疾人", "残疾人证"},
		[]string{"残疾人证号码|card_no|C|20|key|mask:keep(6,4)", "发证机关|authority|C|100", "发证机关行政区划|authority_region|C|6", "发证日期|issued_on|D|8",
			"残疾人证注销原因|cancel_reason|C|200", "注销日期|cancelled_on|D|8"}},
	{"scj", "企业法人登记信息", "102", "在市场监管部门登记的企业法人信息。", "daily", "unconditional", "open",
		[]catalog.ShareMethod{"api", "file", "exchange"}, []string{"企业", "法人", "市场主体"},
		[]string{"统一社会信用代码|credit_code|C|18|key|q:required;credit_code", "企业注册号|reg_no|C|20", "企业名称|name|C|200|q:required",
			"法定代表人姓名|legal_rep|C|50", "行政区划代码|region_code|C|6|q:region", "登记住所|address|C|200", "企业类型|type|C|10", "行业|industry|C|10",
			"成立日期|established_on|D|8", "登记机关|authority|C|100"}},
	{"scj", "个体工商户登记信息", "102", "个体工商户注册登记信息。", "daily", "unconditional", "open",
		[]catalog.ShareMethod{"api", "file"}, []string{"个体工商户", "市场主体"},
		[]string{"个体工商户注册号|reg_no|C|20|key", "业户名称|name|C|200", "经营者姓名|operator|C|50|mask:surname", "行政区划代码|region_code|C|6",
			"登记经营场所|address|C|200", "经营范围|scope|M|2000", "成立日期|established_on|D|8"}},
	{"swj", "纳税人登记信息", "102", "企业税务登记信息。", "monthly", "conditional", "closed",
		[]catalog.ShareMethod{"api", "verify"}, []string{"纳税", "税务登记"},
		[]string{"纳税人识别号|taxpayer_id|C|20|key", "注册地址|address|C|200", "登记日期|registered_on|D|8", "登记机关|authority|C|100"}},
	{"zwb", "事业单位登记信息", "102", "机构编制部门登记的事业单位法人信息。", "quarterly", "unconditional", "on_request",
		[]catalog.ShareMethod{"api", "file"}, []string{"事业单位", "法人"},
		[]string{"事业单位法人证书号|certificate_no|C|30|key", "单位名称|name|C|200", "单位地址|address|C|200", "法定代表人姓名|legal_rep|C|50", "登记日期|registered_on|D|8"}},
	{"zrj", "不动产登记信息", "103", "不动产权属登记信息。", "daily", "conditional", "closed",
		[]catalog.ShareMethod{"verify", "exchange"}, []string{"不动产", "房产", "土地"},
		[]string{"不动产单元号|unit_no|C|28|key", "权利人名称|owner|C|200|mask:surname", "坐落|location|C|200", "面积|area|N|12", "登记日期|registered_on|D|8"}},
	{"wjw", "计划生育信息", "101", "计划生育服务证和流动人员婚育证明信息（海珠区办法第十四条）。", "monthly", "conditional", "closed",
		[]catalog.ShareMethod{"verify"}, []string{"计划生育", "婚育证明"},
		[]string{"计划生育服务证号码|service_card_no|C|30|key", "流动人员婚育证明号码|migrant_cert_no|C|30", "领证日期|issued_on|D|8",
			"发证机关|authority|C|100", "发证机关行政区划|authority_region|C|6|q:region"}},
	{"mzj", "最低生活保障信息", "202", "城乡居民最低生活保障登记信息（海珠区办法第十五条）。", "monthly", "conditional", "closed",
		[]catalog.ShareMethod{"api", "verify"}, []string{"低保", "社会救助"},
		[]string{"低保证号|card_no|C|30|key", "公民身份号码|citizen_id|C|18|mask:keep(6,4)|q:citizen_id", "发证机关名称|authority|C|100",
			"发证机关行政区划|authority_region|C|6|q:region"}},
	{"scj", "组织机构登记信息", "102", "组织机构代码登记与校核信息（海珠区办法第二十一条）。", "monthly", "unconditional", "open",
		[]catalog.ShareMethod{"api", "file"}, []string{"组织机构", "法人"},
		[]string{"统一社会信用代码|credit_code|C|18|key|q:credit_code", "组织机构批准文号|approval_no|C|50", "机构注册类型|org_type|C|10",
			"注册地址|address|C|200", "校核日期|checked_on|D|8", "校核结果|check_result|C|10", "成立日期|established_on|D|8"}},
	{"gaj", "机动车驾驶人信息", "3", "机动车驾驶证核发信息（公安部门职能信息资源）。", "weekly", "none", "closed",
		nil, []string{"驾驶证", "交通"},
		[]string{"驾驶证号|license_no|C|18|key", "准驾车型|vehicle_class|C|10", "有效期止|valid_until|D|8"}},
}

func (d demoEntry) content() catalog.Content {
	c := catalog.Content{Name: d.name, ClassCode: d.class, Abstract: d.abstract, FormatClass: "database", FormatType: "postgresql",
		Keywords: d.keywords, ShareType: catalog.ShareType(d.share), ShareMethods: d.methods, OpenType: catalog.OpenType(d.open), UpdateCycle: d.cycle}
	switch c.ShareType {
	case catalog.ShareConditional:
		c.ShareCondition = "用于履行法定职责，须说明用途并经提供部门审核"
	case catalog.ShareNone:
		c.ShareBasis = "依据《中华人民共和国道路交通安全法》及部门规定不予共享"
	}
	if c.OpenType == catalog.OpenOnRequest {
		c.OpenCondition = "申请人须说明用途并签订使用协议"
	}
	for _, spec := range d.items {
		parts := strings.Split(spec, "|")
		it := catalog.DataItem{Name: parts[0], MachineName: parts[1], DataType: parts[2]}
		fmt.Sscan(parts[3], &it.Length)
		for _, p := range parts[4:] {
			switch {
			case p == "key":
				it.Key = true
			case strings.HasPrefix(p, "mask:"):
				it.MaskRule, it.Sensitivity = strings.TrimPrefix(p, "mask:"), "sensitive"
			case strings.HasPrefix(p, "q:"):
				it.QualityRule = strings.TrimPrefix(p, "q:")
			}
		}
		c.Items = append(c.Items, it)
	}
	return c
}

// loadCatalog registers and publishes the demo catalog through the normal
// workflow, as each department's data administrator and the platform
// administrator would.
func loadCatalog(ctx context.Context, ids *identity.Service, cat *catalog.Service) (map[string]int64, error) {
	admin, err := ids.UserByLogin(ctx, "admin")
	if err != nil {
		return nil, err
	}
	n := map[string]int64{}
	for _, d := range demoCatalog {
		da, err := ids.UserByLogin(ctx, d.dept+".admin")
		if err != nil {
			return nil, err
		}
		e, err := cat.CreateEntry(ctx, da.Actor(), d.content())
		if err != nil {
			return nil, fmt.Errorf("demo entry %s: %w", d.name, err)
		}
		steps := []struct {
			actor policy.Actor
			fn    func(context.Context, policy.Actor, int64) (catalog.Entry, error)
		}{{da.Actor(), cat.Submit}, {admin.Actor(), cat.Approve}, {admin.Actor(), cat.Publish}}
		for _, s := range steps {
			if _, err := s.fn(ctx, s.actor, e.ID); err != nil {
				return nil, fmt.Errorf("demo entry %s: %w", d.name, err)
			}
		}
		n[d.name] = e.ID
	}
	return n, nil
}
