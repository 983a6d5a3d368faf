package web

import (
	"net/http"
	"strings"
)

// Lang is a UI language: Chinese first, English on request.
type Lang string

// Languages.
const (
	ZH Lang = "zh"
	EN Lang = "en"
)

func langOf(r *http.Request) Lang {
	if c, err := r.Cookie("gs_lang"); err == nil && c.Value == "en" {
		return EN
	}
	return ZH
}

// messages holds every UI string: key → {Chinese, English}.
var messages = map[string][2]string{
	"app.name":            {"政务信息资源共享交换平台", "Government Information Resource Sharing and Exchange Platform"},
	"app.short":           {"共享交换平台", "govshare"},
	"lang.switch":         {"English", "中文"},
	"nav.home":            {"工作台", "Dashboard"},
	"nav.depts":           {"部门管理", "Departments"},
	"nav.users":           {"用户管理", "Users"},
	"nav.tokens":          {"API令牌", "API tokens"},
	"nav.audit":           {"审计日志", "Audit log"},
	"nav.account":         {"账号安全", "Account security"},
	"nav.apidocs":         {"API文档", "API reference"},
	"nav.logout":          {"退出", "Log out"},
	"nav.group.sys":       {"系统管理", "Administration"},
	"nav.group.me":        {"个人", "Me"},
	"nav.group.dev":       {"开发接入", "Integration"},
	"login.title":         {"用户登录", "Log in"},
	"login.login":         {"登录名", "Login"},
	"login.password":      {"密码", "Password"},
	"login.submit":        {"登录", "Log in"},
	"login.hint":          {"连续5次登录失败将锁定账号15分钟。", "Five failed logins in a row lock the account for 15 minutes."},
	"totp.title":          {"双因素认证", "Two-factor login"},
	"totp.code":           {"动态验证码", "One-time code"},
	"totp.hint":           {"请输入身份验证器应用中显示的6位动态验证码。", "Enter the 6-digit code shown by your authenticator app."},
	"totp.submit":         {"验证", "Verify"},
	"enrol.title":         {"启用双因素认证", "Set up two-factor login"},
	"enrol.required":      {"管理员账号必须启用双因素认证后才能继续。", "Administrator accounts must set up two-factor login before going on."},
	"enrol.step1":         {"用身份验证器应用（如 FreeOTP、Google Authenticator、微信小程序“腾讯身份验证器”）扫描二维码，或手动输入密钥：", "Scan the QR code with an authenticator app, or type in the secret:"},
	"enrol.secret":        {"密钥", "Secret"},
	"enrol.uri":           {"otpauth 链接", "otpauth URI"},
	"enrol.step2":         {"输入应用显示的6位验证码以确认：", "Enter the 6-digit code the app shows to confirm:"},
	"enrol.submit":        {"确认启用", "Turn on"},
	"enrol.enabled":       {"双因素认证已启用。", "Two-factor login is on."},
	"enrol.disable":       {"关闭双因素认证", "Turn two-factor login off"},
	"pw.title":            {"修改密码", "Change password"},
	"pw.forced":           {"首次登录或密码被重置后，必须先修改密码。", "After the first login or a reset you must change your password first."},
	"pw.old":              {"原密码", "Current password"},
	"pw.new":              {"新密码", "New password"},
	"pw.confirm":          {"确认新密码", "Repeat new password"},
	"pw.rule":             {"至少8位，包含大写字母、小写字母、数字、符号中的至少三类，且不含登录名。", "At least 8 characters from at least 3 of: upper case, lower case, digits, symbols; must not contain the login."},
	"pw.mismatch":         {"两次输入的新密码不一致", "the two new passwords differ"},
	"pw.changed":          {"密码已修改。", "Password changed."},
	"common.save":         {"保存", "Save"},
	"common.create":       {"新建", "Create"},
	"common.edit":         {"编辑", "Edit"},
	"common.cancel":       {"取消", "Cancel"},
	"common.search":       {"查询", "Search"},
	"common.reset":        {"重置", "Reset"},
	"common.actions":      {"操作", "Actions"},
	"common.status":       {"状态", "Status"},
	"common.active":       {"正常", "Active"},
	"common.disabled":     {"停用", "Disabled"},
	"common.none":         {"暂无数据", "Nothing here yet"},
	"common.next":         {"下一页", "Next page"},
	"common.first":        {"第一页", "First page"},
	"common.all":          {"全部", "All"},
	"common.created":      {"创建时间", "Created"},
	"common.saved":        {"已保存。", "Saved."},
	"common.back":         {"返回", "Back"},
	"home.welcome":        {"欢迎", "Welcome"},
	"home.roles":          {"角色", "Roles"},
	"home.dept":           {"所属部门", "Department"},
	"home.last":           {"最近登录记录", "Recent sign-ins"},
	"home.tasks":          {"常用功能", "Shortcuts"},
	"home.stats":          {"平台概况", "Platform at a glance"},
	"home.ndepts":         {"部门数", "Departments"},
	"home.overdue":        {"逾期未完成的目录变更", "Catalog changes past their deadline"},
	"dept.title":          {"部门管理", "Departments"},
	"dept.new":            {"新建部门", "New department"},
	"dept.edit":           {"编辑部门", "Edit department"},
	"dept.name":           {"部门名称", "Name"},
	"dept.code":           {"统一社会信用代码", "Unified social credit code"},
	"dept.region":         {"行政区划代码", "Region code"},
	"dept.parent":         {"上级部门", "Parent"},
	"dept.toplevel":       {"（顶级）", "(top level)"},
	"dept.users":          {"用户", "Users"},
	"dept.created":        {"部门已创建。", "Department created."},
	"user.title":          {"用户管理", "Users"},
	"user.new":            {"新建用户", "New user"},
	"user.edit":           {"编辑用户", "Edit user"},
	"user.login":          {"登录名", "Login"},
	"user.name":           {"姓名", "Name"},
	"user.mobile":         {"手机号码", "Mobile"},
	"user.dept":           {"所属部门", "Department"},
	"user.roles":          {"角色", "Roles"},
	"user.password":       {"初始密码", "Initial password"},
	"user.pwhint":         {"用户首次登录时必须修改。", "The user must change it at first login."},
	"user.totp":           {"双因素", "2FA"},
	"user.locked":         {"已锁定", "Locked"},
	"user.created":        {"用户已创建，首次登录须修改密码。", "User created; they must change the password at first login."},
	"user.security":       {"安全操作", "Security actions"},
	"user.resetpw":        {"重置密码", "Reset password"},
	"user.newpw":          {"临时密码", "Temporary password"},
	"user.unlock":         {"解除锁定", "Unlock"},
	"user.resettotp":      {"重置双因素认证", "Reset two-factor login"},
	"user.revoke":         {"注销全部会话", "End all sessions"},
	"user.done":           {"操作已完成。", "Done."},
	"user.separation":     {"三员分立：系统管理员、安全管理员、安全审计员只能三选一。", "Separation of duties: platform administrator, security administrator and auditor exclude each other."},
	"user.filter":         {"登录名或姓名", "Login or name"},
	"role.platform_admin": {"系统管理员", "Platform administrator"},
	"role.security_admin": {"安全管理员", "Security administrator"},
	"role.auditor":        {"安全审计员", "Auditor"},
	"role.dept_admin":     {"部门数据管理员", "Department data administrator"},
	"role.dept_reviewer":  {"审批人", "Department reviewer"},
	"role.consumer":       {"使用部门用户", "Consumer"},
	"token.title":         {"API令牌", "API tokens"},
	"token.intro":         {"业务系统调用平台API时使用令牌认证：请求头 Authorization: Bearer <令牌>。令牌代表您本人，权限与您的角色相同。", "Machine clients authenticate with a token: header Authorization: Bearer <token>. A token acts as you, with your roles."},
	"token.name":          {"用途名称", "Name"},
	"token.days":          {"有效天数", "Lifetime (days)"},
	"token.prefix":        {"令牌开头", "Starts with"},
	"token.expires":       {"到期时间", "Expires"},
	"token.used":          {"最近使用", "Last used"},
	"token.revoke":        {"吊销", "Revoke"},
	"token.revoked":       {"已吊销", "Revoked"},
	"token.expired":       {"已过期", "Expired"},
	"token.once":          {"请立即复制保存此令牌，它只显示这一次：", "Copy this token now; it is shown only once:"},
	"audit.title":         {"审计日志", "Audit log"},
	"audit.from":          {"起始时间", "From"},
	"audit.to":            {"截止时间", "To"},
	"audit.actor":         {"操作者", "Actor"},
	"audit.action":        {"操作", "Action"},
	"audit.object":        {"对象", "Object"},
	"audit.result":        {"结果", "Result"},
	"audit.client":        {"客户端", "Client"},
	"audit.time":          {"时间", "Time"},
	"audit.seq":           {"序号", "Seq"},
	"audit.details":       {"详情", "Details"},
	"audit.export":        {"导出CSV", "Export CSV"},
	"audit.verify":        {"校验哈希链", "Verify hash chain"},
	"audit.verified":      {"哈希链完整：已校验 %d 条事件（序号 %d–%d），耗时 %s。", "Hash chain intact: %d events checked (seq %d–%d) in %s."},
	"audit.broken":        {"哈希链被破坏：事件 %d：%s", "Hash chain broken at event %d: %s"},
	"result.ok":           {"成功", "OK"},
	"result.denied":       {"拒绝", "Denied"},
	"result.error":        {"错误", "Error"},
	"err.title":           {"出错了", "Something went wrong"},
	"err.403":             {"您没有权限访问此页面。此次访问已记录。", "You are not allowed to open this page. The attempt was recorded."},
	"err.404":             {"页面不存在。", "Page not found."},
	"err.500":             {"服务器内部错误，请稍后重试或联系管理员。", "Internal error; try again later or contact the administrator."},
	"docs.title":          {"API 参考文档", "API reference"},
	"docs.auth":           {"认证", "Authentication"},
	"docs.errors":         {"错误格式", "Errors"},
	"docs.params":         {"参数", "Parameters"},
	"docs.body":           {"请求体", "Request body"},
	"docs.response":       {"响应", "Response"},
	"docs.field":          {"字段", "Field"},
	"docs.type":           {"类型", "Type"},
	"docs.in":             {"位置", "In"},
	"docs.required":       {"必填", "Required"},
	"docs.desc":           {"说明", "Description"},
	"docs.openapi":        {"OpenAPI 3.1 文档", "OpenAPI 3.1 document"},
}

// messageTables are searched in order; each area's file adds its own
// table in an init function.
var messageTables = []map[string][2]string{messages, catalogMessages}

// T looks up a UI string.
func T(lang Lang, key string) string {
	var m [2]string
	ok := false
	for _, table := range messageTables {
		if m, ok = table[key]; ok {
			break
		}
	}
	if !ok {
		if rest, isCat := strings.CutPrefix(key, "cat."); isCat {
			m, ok = catalogLabels[rest]
		}
	}
	if !ok {
		return key
	}
	if lang == EN {
		return m[1]
	}
	return m[0]
}
