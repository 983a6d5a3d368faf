package web

// refdataMessages are the UI strings of reference data: the region table
// and the code tables.
var refdataMessages = map[string][2]string{
	"nav.regions":                  {"行政区划", "Regions"},
	"nav.codes":                    {"代码表", "Code tables"},
	"refdata.code":                 {"代码", "Code"},
	"refdata.name":                 {"名称", "Name"},
	"refdata.label":                {"名称", "Label"},
	"refdata.status":               {"状态", "Status"},
	"refdata.status.current":       {"现行", "Current"},
	"refdata.status.retired":       {"已撤销", "Retired"},
	"refdata.valid_from":           {"启用日期", "In use from"},
	"refdata.valid_to":             {"撤销日期", "In use until"},
	"refdata.source":               {"来源", "Source"},
	"refdata.updated_at":           {"更新时间", "Updated"},
	"refdata.loaded_at":            {"导入于", "Loaded"},
	"refdata.regions.search":       {"代码前缀或名称", "Code prefix or name"},
	"refdata.regions.count":        {"共 %d 条", "%d in all"},
	"refdata.regions.more":         {"只显示前 %d 条，请缩小查找范围。", "Only the first %d are shown; narrow the search."},
	"refdata.regions.table":        {"行政区划代码表", "The region table"},
	"refdata.regions.info":         {"现行代码 %d 个，已撤销代码 %d 个。", "%d current and %d retired codes."},
	"refdata.regions.not_loaded":   {"尚未导入行政区划代码表：质量规则暂时只检查代码格式(6位数字)。请平台管理员导入。", "The region table is not loaded yet: quality rules check only the shape of region codes (6 digits) until a platform administrator loads it."},
	"refdata.regions.retired_hint": {"已撤销的代码仍然有效：旧记录和公民身份号码中的地址码可能使用它们。", "Retired codes stay valid: old records and the region part of citizen IDs may use them."},
	"refdata.regions.import":       {"导入行政区划代码表", "Load the region table"},
	"refdata.regions.import.hint":  {"UTF-8编码的CSV文件，首行为列名；文件替换整个代码表，任何一行有错则全部不导入，错误会指明行和列。status 为 current(现行) 或 retired(已撤销)，日期为 YYYY-MM-DD。", "A UTF-8 CSV file whose first row names the columns. The file replaces the whole table; if any row is wrong nothing is loaded, and the error names the row and column. status is current or retired; dates are YYYY-MM-DD."},
	"refdata.regions.imported":     {"已导入 %d 个代码：现行 %d 个，已撤销 %d 个。", "Loaded %d codes: %d current, %d retired."},
	"refdata.codes.intro":          {"代码表是质量规则 code:名称 引用的枚举值，如 GB/T 2261.1 人的性别代码。平台预置 GB/T 2261.1 和 GB/T 3304(民族)。", "Code tables are the enumerations quality rules cite as code:NAME, such as the GB/T 2261.1 sex codes. GB/T 2261.1 and GB/T 3304 (ethnic groups) come with the platform."},
	"refdata.table_name":           {"代码表名称", "Table name"},
	"refdata.table_title":          {"说明", "Title"},
	"refdata.codes.count":          {"代码数", "Codes"},
	"refdata.codes.rule":           {"在信息项的质量规则中写作 code:%s", "Cite it in a data item's quality rule as code:%s"},
	"refdata.codes.upload":         {"新建或替换代码表", "Create or replace a code table"},
	"refdata.codes.upload.hint":    {"CSV文件首行为 code,label；或JSON：[{\"code\":\"1\",\"label\":\"男性\"}]。同名代码表整表替换，任何一行有错则全部不导入。", "A CSV file with the header code,label, or JSON: [{\"code\":\"1\",\"label\":\"male\"}]. A table of the same name is replaced as a whole; if any row is wrong nothing is loaded."},
	"refdata.codes_saved":          {"代码表已保存。", "The code table is saved."},
}

func init() { messageTables = append(messageTables, refdataMessages) }
