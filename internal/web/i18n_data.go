package web

func init() { messageTables = append(messageTables, dataMessages) }

// dataMessages are the UI strings of the data services (数据服务).
var dataMessages = map[string][2]string{
	"nav.data":            {"数据服务", "Data services"},
	"data.title":          {"数据服务", "Data services"},
	"data.grants":         {"可使用的授权", "Grants you can use"},
	"data.grants.hint":    {"接口查询、比对核验由接入应用签名调用(见 API 文档)；批量下载可在授权页面进行。每次使用都须说明用途并记入审计日志。", "Apps call queries and comparisons with signed requests (see the API reference); downloads can also be made on the grant's page. Every use states its purpose and is audited."},
	"data.api":            {"接口", "API"},
	"data.side.consumer":  {"本部门使用他人数据", "Our use of others' data"},
	"data.side.provider":  {"他人使用本部门数据", "Others' use of our data"},
	"data.usage":          {"使用统计", "Usage"},
	"data.usage.days":     {"近30天", "last 30 days"},
	"data.usage.entry":    {"数据服务使用(近14天)", "Data services use (last 14 days)"},
	"data.day":            {"日期", "Day"},
	"data.resource":       {"资源", "Resource"},
	"data.method":         {"方式", "Method"},
	"data.calls":          {"调用次数", "Calls"},
	"data.records":        {"记录数", "Records"},
	"data.errors":         {"错误", "Errors"},
	"data.refused":        {"超限拒绝", "Refused (limits)"},
	"data.latency":        {"平均/最长耗时", "Avg / max latency"},
	"data.method.api":     {"接口查询", "Query"},
	"data.method.verify":  {"比对核验", "Comparison"},
	"data.method.file":    {"批量下载", "Download"},
	"data.method.service": {"服务调用", "Service call"},
	"data.download":       {"批量下载", "Download"},
	"data.download.do":    {"下载", "Download"},
	"data.format":         {"格式", "Format"},
	"data.download.hint":  {"只含授权的信息项，按规则脱敏，限于授权的行范围；文件末列 _watermark 标明下载部门、人员、授权和时间。", "Only granted items, masked, within the row scope; the last column _watermark names the department, person, grant and time."},
}
