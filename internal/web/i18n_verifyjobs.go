package web

func init() { messageTables = append(messageTables, verifyJobMessages) }

// verifyJobMessages are the UI strings of the comparison jobs page (数据比对任务).
var verifyJobMessages = map[string][2]string{
	"nav.group.verify": {"数据比对", "Comparison"},
	"nav.verify_jobs":  {"比对任务", "Comparison jobs"},
	"vj.title":         {"数据比对任务", "Comparison jobs"},
	"vj.intro":         {"上传最多100万条记录(CSV)，与授权资源中的数据逐条比对：结果只说明一致、不一致(逐项)或未找到，从不返回存储的数据(数据不落地)。任务在后台运行，完成后下载结果；结果保留7天。", "Upload up to a million records (CSV) to compare with a resource you hold a grant on: the result says only match, mismatch (per item) or not found, never the stored data. Jobs run in the background; download the result when done. Results are kept 7 days."},
	"vj.id":            {"编号", "No."},
	"vj.resource":      {"信息资源", "Resource"},
	"vj.items":         {"比对信息项", "Items compared"},
	"vj.dept":          {"使用部门", "Department"},
	"vj.state":         {"状态", "State"},
	"vj.state.queued":  {"排队中", "Queued"},
	"vj.state.running": {"比对中", "Running"},
	"vj.state.done":    {"已完成", "Done"},
	"vj.state.failed":  {"失败", "Failed"},
	"vj.progress":      {"进度", "Progress"},
	"vj.matched":       {"一致", "Match"},
	"vj.mismatched":    {"不一致", "Mismatch"},
	"vj.not_found":     {"未找到", "Not found"},
	"vj.finished":      {"完成时间", "Finished"},
	"vj.download":      {"下载结果", "Download result"},
	"vj.kept_until":    {"保留至", "Kept until"},
	"vj.purged":        {"结果已过保留期删除", "Result deleted after its retention period"},
	"vj.none":          {"还没有比对任务。", "No comparison jobs yet."},
	"vj.new":           {"新建比对任务", "New comparison job"},
	"vj.key":           {"主键", "Key"},
	"vj.comparable":    {"可比对", "Comparable"},
	"vj.items_hint":    {"字段名，逗号分隔；不填则比对文件首行中主键以外的全部信息项。", "Item names, comma-separated; leave empty to compare every item the first row names besides the key."},
	"vj.purpose":       {"用途", "Purpose"},
	"vj.file":          {"CSV 文件", "CSV file"},
	"vj.file_hint":     {"UTF-8 编码，首行为信息项字段名(含主键)，每行一条记录，最多100万条。缺主键的行会使整个文件被拒绝。", "UTF-8, the item names (the key included) in the first row, one record a row, at most a million. A row without its key refuses the whole file."},
	"vj.submit":        {"上传并比对", "Upload and compare"},
	"vj.no_grants":     {"本部门没有以比对核验方式使用资源的有效授权，请先申请。", "Your department holds no grant to compare with any resource; apply first."},
	"vj.created":       {"比对任务已创建，正在排队。", "Comparison job created and queued."},
}
