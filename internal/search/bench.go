package search

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"govshare/internal/benchstat"
	"govshare/internal/store"
)

// BenchResult compares the index with the SQL it replaces: the same rows,
// the same queries, in the same run.
type BenchResult struct {
	Database   string        // dialect and target, secrets removed
	Docs       int           // documents generated, indexed and stored
	Queries    int           // queries per query length
	LoadRows   time.Duration // writing the rows to the scratch table
	BuildIndex time.Duration // indexing them, until persisted and merged
	IndexBytes int64         // on disk; 0 for an in-memory index
	Rows       []BenchRow
	Machine    string
}

// BenchRow is one query length. Index times include counting all nine
// facets; SQL times are the LIKE page plus a GROUP BY share_type count over
// the same condition, its nearest equivalent.
type BenchRow struct {
	Runes              int // Chinese characters per query
	IndexP50, IndexP99 time.Duration
	SQLP50, SQLP99     time.Duration
	// Mean matches per query on each side: equal when the index matches
	// exactly what LIKE matches.
	IndexMatches, SQLMatches float64
	// Mismatches counts queries whose totals differ between the two.
	Mismatches int
}

// RatioP50 is how many times faster the index answers at the median.
func (r BenchRow) RatioP50() float64 { return ratio(r.SQLP50, r.IndexP50) }

// RatioP99 is how many times faster the index answers at the 99th percentile.
func (r BenchRow) RatioP99() float64 { return ratio(r.SQLP99, r.IndexP99) }

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// String prints the result as a table.
func (r BenchResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "search benchmark: %d documents, %d queries per length, %s\n", r.Docs, r.Queries, r.Database)
	fmt.Fprintf(&b, "machine: %s\n", r.Machine)
	size := "in memory"
	if r.IndexBytes > 0 {
		size = fmt.Sprintf("%.1f MB on disk", float64(r.IndexBytes)/1e6)
	}
	fmt.Fprintf(&b, "load rows %s, build index %s, index %s\n\n", round(r.LoadRows), round(r.BuildIndex), size)
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "query\tindex p50\tindex p99\tLIKE p50\tLIKE p99\tp50 ×\tp99 ×\tmatches index\tmatches LIKE\t")
	for _, row := range r.Rows {
		fmt.Fprintf(w, "%d 字\t%s\t%s\t%s\t%s\t%.1f\t%.1f\t%.0f\t%.0f\t\n", row.Runes,
			round(row.IndexP50), round(row.IndexP99), round(row.SQLP50), round(row.SQLP99),
			row.RatioP50(), row.RatioP99(), row.IndexMatches, row.SQLMatches)
	}
	w.Flush()
	return b.String()
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// Bench generates n synthetic catalog entries (deterministic), writes them to
// a scratch table search_bench in db and to idx, then times the same
// 1-, 2- and 4-character queries through both. idx must be empty: the bench
// fills it with made-up entries, so never hand it the catalog's index. The
// scratch table is dropped at the end. progress, if not nil, receives a line
// per stage.
func Bench(ctx context.Context, db *store.DB, idx Index, n int, progress io.Writer) (BenchResult, error) {
	return bench(ctx, db, idx, n, benchQueries, progress)
}

// bench is Bench with the number of queries per length as a parameter, so
// the test can stay quick.
func bench(ctx context.Context, db *store.DB, idx Index, n, queries int, progress io.Writer) (BenchResult, error) {
	if progress == nil {
		progress = io.Discard
	}
	if n <= 0 {
		return BenchResult{}, errors.New("search bench: no documents asked for")
	}
	if c, err := idx.Count(); err != nil || c != 0 {
		return BenchResult{}, fmt.Errorf("search bench: the index must be an empty scratch index (%d documents, %v)", c, err)
	}
	res := BenchResult{
		Database: db.String(), Docs: n, Queries: queries,
		Machine: fmt.Sprintf("%s/%s, %d CPU (GOMAXPROCS %d), %s",
			runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version()),
	}
	if _, err := db.Exec(ctx, `DROP TABLE IF EXISTS search_bench`); err != nil {
		return res, fmt.Errorf("search bench: %w", err)
	}
	if _, err := db.Exec(ctx, `CREATE TABLE search_bench (
		id BIGINT PRIMARY KEY, name TEXT NOT NULL, abstract TEXT NOT NULL, keywords TEXT NOT NULL,
		items TEXT NOT NULL, dept TEXT NOT NULL, share_type TEXT NOT NULL, class_code TEXT NOT NULL,
		popularity DOUBLE PRECISION NOT NULL)`); err != nil {
		return res, fmt.Errorf("search bench: create scratch table: %w", err)
	}
	defer func() { _, _ = db.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS search_bench`) }()

	if err := benchLoad(ctx, db, idx, n, progress, &res); err != nil {
		return res, err
	}
	for _, runes := range []int{1, 2, 4} {
		row, err := benchQueryLength(ctx, db, idx, runes, queries)
		if err != nil {
			return res, err
		}
		res.Rows = append(res.Rows, row)
		fmt.Fprintf(progress, "%d-character queries: index p50 %s, LIKE p50 %s\n", runes, round(row.IndexP50), round(row.SQLP50))
	}
	return res, nil
}

const (
	benchQueries     = 200
	benchWarmupShare = 20   // one unmeasured query per 20 measured, first
	benchBatch       = 1000 // rows generated and stored at once
	benchInsert      = 100  // rows per INSERT statement
)

// benchLoad writes the documents to the table, then builds the index from
// a second pass of the same deterministic generator the way Rebuild does at
// a server's start (without marking the index complete). Both stream a batch at a time, so memory stays flat
// whatever n is.
func benchLoad(ctx context.Context, db *store.DB, idx Index, n int, progress io.Writer, res *BenchResult) error {
	gen := newBenchGen()
	batch := make([]Document, 0, benchBatch)
	t := time.Now()
	for start := 1; start <= n; start += benchBatch {
		batch = batch[:0]
		for id := start; id < start+benchBatch && id <= n; id++ {
			batch = append(batch, gen.document(int64(id)))
		}
		if err := db.InTx(ctx, func(tx *store.Tx) error { return insertBench(ctx, tx, batch) }); err != nil {
			return fmt.Errorf("search bench: store rows %d…: %w", start, err)
		}
	}
	if db.Dialect() == store.Postgres {
		// Fresh statistics, as a production table would have.
		if _, err := db.Exec(ctx, `ANALYZE search_bench`); err != nil {
			return fmt.Errorf("search bench: %w", err)
		}
	}
	res.LoadRows = time.Since(t)
	fmt.Fprintf(progress, "stored %d rows in %s\n", n, round(res.LoadRows))

	t = time.Now()
	gen = newBenchGen()
	_, err := fill(ctx, idx, func(yield func(Document) error) error {
		for id := 1; id <= n; id++ {
			if err := yield(gen.document(int64(id))); err != nil {
				return err
			}
		}
		return nil
	}, func(done int) {
		if done%(10*RebuildBatch) == 0 || done == n {
			fmt.Fprintf(progress, "indexed %d/%d in %s\n", done, n, round(time.Since(t)))
		}
	})
	if err != nil {
		return fmt.Errorf("search bench: %w", err)
	}
	res.BuildIndex = time.Since(t)
	if b, ok := idx.(*Bleve); ok {
		if res.IndexBytes, err = b.diskSize(); err != nil {
			return fmt.Errorf("search bench: index size: %w", err)
		}
	}
	return nil
}

func insertBench(ctx context.Context, tx *store.Tx, docs []Document) error {
	for len(docs) > 0 {
		part := docs[:min(benchInsert, len(docs))]
		docs = docs[len(part):]
		var b strings.Builder
		b.WriteString(`INSERT INTO search_bench (id, name, abstract, keywords, items, dept, share_type, class_code, popularity) VALUES `)
		args := make([]any, 0, len(part)*9)
		for i, d := range part {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(" + store.Placeholders(9) + ")")
			args = append(args, d.ID, d.Name, d.Abstract, strings.Join(d.Keywords, " "),
				strings.Join(d.ItemNames, " "), d.DeptName, d.ShareType, d.ClassCode, d.Popularity)
		}
		if _, err := tx.Exec(ctx, b.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

const (
	benchWhere = `name LIKE ? ESCAPE '\' OR abstract LIKE ? ESCAPE '\' OR keywords LIKE ? ESCAPE '\'
		OR items LIKE ? ESCAPE '\' OR dept LIKE ? ESCAPE '\'`
	benchPageSQL  = `SELECT id FROM search_bench WHERE ` + benchWhere + ` LIMIT 20`
	benchFacetSQL = `SELECT share_type, COUNT(*) FROM search_bench WHERE ` + benchWhere + ` GROUP BY share_type`
)

// benchSQL is the query the index replaces: a page of LIKE matches and the
// count by share type. It returns the number of matches.
func benchSQL(ctx context.Context, db *store.DB, text string) (int, error) {
	p := "%" + store.LikeEscape(text) + "%"
	args := []any{p, p, p, p, p}
	rows, err := db.Query(ctx, benchPageSQL, args...)
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	rows, err = db.Query(ctx, benchFacetSQL, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	total := 0
	for rows.Next() {
		var st string
		var c int
		if err := rows.Scan(&st, &c); err != nil {
			return 0, err
		}
		total += c
	}
	return total, rows.Err()
}

func benchQueryLength(ctx context.Context, db *store.DB, idx Index, runes, k int) (BenchRow, error) {
	row := BenchRow{Runes: runes}
	warmup := max(1, k/benchWarmupShare)
	queries := benchQueryTexts(runes, warmup+k)
	var idxTimes, sqlTimes []time.Duration
	var idxSum, sqlSum int
	for i, text := range queries {
		t := time.Now()
		r, err := idx.Search(ctx, Query{Text: text, Size: 20})
		if err != nil {
			return row, fmt.Errorf("search bench: index %q: %w", text, err)
		}
		idxTime := time.Since(t)
		t = time.Now()
		count, err := benchSQL(ctx, db, text)
		if err != nil {
			return row, fmt.Errorf("search bench: LIKE %q: %w", text, err)
		}
		sqlTime := time.Since(t)
		if i < warmup {
			continue
		}
		idxTimes, sqlTimes = append(idxTimes, idxTime), append(sqlTimes, sqlTime)
		idxSum, sqlSum = idxSum+r.Total, sqlSum+count
		if r.Total != count {
			row.Mismatches++
		}
	}
	row.IndexP50, row.IndexP99 = percentile(idxTimes, 50), percentile(idxTimes, 99)
	row.SQLP50, row.SQLP99 = percentile(sqlTimes, 50), percentile(sqlTimes, 99)
	row.IndexMatches = float64(idxSum) / float64(len(idxTimes))
	row.SQLMatches = float64(sqlSum) / float64(len(sqlTimes))
	return row, nil
}

// percentile is the nearest-rank p-th percentile of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	return benchstat.Percentile(slices.Sorted(slices.Values(ds)), float64(p))
}

// The synthetic catalog: subjects a city's departments really publish,
// each with its classification, provider and typical data items.
var benchSubjects = []struct {
	name, class, dept string
	keywords, items   []string
}{
	{"户籍登记", "101001", "公安局", []string{"户籍", "人口"}, []string{"姓名", "公民身份号码", "户籍地址", "户主关系"}},
	{"人口基本信息", "101001", "公安局", []string{"人口", "身份"}, []string{"姓名", "性别", "民族", "出生日期"}},
	{"流动人口居住登记", "101002", "公安局", []string{"流动人口", "居住证"}, []string{"居住地址", "登记日期", "居住事由"}},
	{"出生医学证明", "101003", "卫生健康委员会", []string{"出生", "人口"}, []string{"新生儿姓名", "出生日期", "出生地点", "母亲姓名"}},
	{"死亡医学证明", "101003", "卫生健康委员会", []string{"死亡", "人口"}, []string{"死者姓名", "死亡日期", "死亡原因"}},
	{"婚姻登记", "101004", "民政局", []string{"婚姻", "登记"}, []string{"男方姓名", "女方姓名", "登记日期", "登记机关"}},
	{"收养登记", "101004", "民政局", []string{"收养"}, []string{"收养人姓名", "被收养人姓名", "登记日期"}},
	{"残疾人证", "101005", "残疾人联合会", []string{"残疾人", "证照"}, []string{"残疾类别", "残疾等级", "证件编号"}},
	{"学籍管理", "101006", "教育局", []string{"学籍", "教育"}, []string{"学生姓名", "学籍号", "学校名称", "入学日期"}},
	{"企业登记", "102001", "市场监督管理局", []string{"企业", "法人"}, []string{"企业名称", "统一社会信用代码", "法定代表人", "注册资本"}},
	{"营业执照", "102001", "市场监督管理局", []string{"营业执照", "证照"}, []string{"企业名称", "经营范围", "成立日期"}},
	{"纳税信用评价", "102002", "税务局", []string{"纳税", "信用"}, []string{"纳税人识别号", "信用等级", "评价年度"}},
	{"企业纳税申报", "102002", "税务局", []string{"纳税", "企业"}, []string{"纳税人识别号", "税种", "申报金额", "所属期"}},
	{"社会组织登记", "102003", "民政局", []string{"社会组织", "法人"}, []string{"组织名称", "业务范围", "登记日期"}},
	{"不动产登记", "103001", "自然资源和规划局", []string{"不动产", "产权"}, []string{"不动产单元号", "权利人", "坐落", "面积"}},
	{"土地利用现状", "103002", "自然资源和规划局", []string{"土地", "规划"}, []string{"图斑编号", "地类", "面积"}},
	{"机动车登记", "104001", "公安局", []string{"机动车", "证照"}, []string{"号牌号码", "车辆类型", "所有人", "登记日期"}},
	{"驾驶证", "104001", "公安局", []string{"驾驶证", "证照"}, []string{"驾驶证号", "准驾车型", "有效期"}},
	{"行政处罚", "105001", "司法局", []string{"处罚", "信用"}, []string{"处罚决定书文号", "违法事实", "处罚结果"}},
	{"失信被执行人名单", "105002", "中级人民法院", []string{"失信", "信用"}, []string{"被执行人姓名", "执行案号", "履行情况"}},
	{"医保结算", "201001", "医疗保障局", []string{"医保", "医疗"}, []string{"参保人姓名", "结算金额", "就诊医院", "结算日期"}},
	{"疫苗接种记录", "201002", "卫生健康委员会", []string{"疫苗", "健康"}, []string{"受种者姓名", "疫苗名称", "接种日期"}},
	{"社保缴纳", "202001", "人力资源和社会保障局", []string{"社保", "缴费"}, []string{"参保人姓名", "缴费基数", "缴费月份", "险种"}},
	{"养老保险待遇发放", "202001", "人力资源和社会保障局", []string{"养老保险", "社保"}, []string{"领取人姓名", "发放金额", "发放月份"}},
	{"失业保险金申领", "202002", "人力资源和社会保障局", []string{"失业保险", "就业"}, []string{"申领人姓名", "申领金额", "申领日期"}},
	{"最低生活保障", "202003", "民政局", []string{"低保", "救助"}, []string{"户主姓名", "保障人数", "保障金额"}},
	{"住房公积金缴存", "202004", "住房公积金管理中心", []string{"公积金", "住房"}, []string{"职工姓名", "缴存基数", "缴存金额"}},
	{"食品经营许可", "203001", "市场监督管理局", []string{"食品", "许可"}, []string{"许可证编号", "经营者名称", "经营项目"}},
	{"药品不良反应监测", "203002", "市场监督管理局", []string{"药品", "监测"}, []string{"药品名称", "报告日期", "不良反应"}},
	{"安全生产许可", "204001", "应急管理局", []string{"安全生产", "许可"}, []string{"企业名称", "许可范围", "有效期"}},
	{"环境质量监测", "211001", "生态环境局", []string{"环境", "监测"}, []string{"监测点位", "监测日期", "空气质量指数"}},
	{"建设工程规划许可", "208001", "自然资源和规划局", []string{"建设工程", "规划"}, []string{"项目名称", "建设单位", "建设规模"}},
	{"退役军人优抚", "301001", "退役军人事务局", []string{"退役军人", "优抚"}, []string{"姓名", "入伍时间", "优抚类别"}},
	{"公交客流统计", "302001", "交通运输局", []string{"公交", "交通"}, []string{"线路编号", "客流量", "统计日期"}},
	{"地区生产总值统计", "303001", "统计局", []string{"统计", "经济"}, []string{"指标名称", "统计期", "数值"}},
}

var (
	benchPrefixes = []string{"", "", "", "全市", "市级", "2023年度", "2024年度", "历年", "城区", "乡镇"}
	benchSuffixes = []string{"信息", "数据", "记录", "台账", "明细", "统计", "名单", "清单", "查询", "核验", "信息表"}
	benchDistrict = []string{"市", "市", "市", "鼓楼区", "台江区", "仓山区", "晋安区", "马尾区", "长乐区", "闽侯县"}
	benchPurposes = []string{"政务服务办理", "跨部门业务协同", "社会治理", "统计分析", "信用监管", "民生保障", "行政审批"}
	benchCycles   = []string{"realtime", "daily", "weekly", "monthly", "quarterly", "half_yearly", "yearly"}
	benchCycleZH  = []string{"实时", "每日", "每周", "每月", "每季度", "每半年", "每年"}
	benchShare    = []string{"unconditional", "unconditional", "conditional", "conditional", "conditional", "none"}
	benchMethods  = []string{"api", "file", "exchange", "verify"}
	benchOpen     = []string{"open", "on_request", "closed", "closed"}
	benchFormats  = []string{"database", "spreadsheet", "api", "file"}
	benchCommon   = []string{"数据来源", "更新时间", "所属区划", "备注", "状态", "经办人"}
)

type benchGen struct {
	rng   *rand.Rand
	depts map[string]int64 // department name → id, numbered as first seen
}

func newBenchGen() *benchGen {
	return &benchGen{rng: rand.New(rand.NewPCG(20240501, 1)), depts: map[string]int64{}}
}

func (g *benchGen) deptID(name string) int64 {
	id, ok := g.depts[name]
	if !ok {
		id = int64(len(g.depts) + 1)
		g.depts[name] = id
	}
	return id
}

func pick[T any](g *benchGen, xs []T) T { return xs[g.rng.IntN(len(xs))] }

func (g *benchGen) document(id int64) Document {
	s := pick(g, benchSubjects)
	district := pick(g, benchDistrict)
	dept := district + s.dept
	cycle := g.rng.IntN(len(benchCycles))
	name := pick(g, benchPrefixes) + s.name + pick(g, benchSuffixes)
	items := slices.Clone(s.items)
	for range g.rng.IntN(3) {
		items = append(items, pick(g, benchCommon))
	}
	items = slices.Compact(slices.Sorted(slices.Values(items)))
	shown := items[:min(2, len(items))]
	abstract := fmt.Sprintf("%s负责归集的%s%s，包括%s等信息项，%s更新，用于%s。",
		dept, s.name, pick(g, benchSuffixes), strings.Join(shown, "、"), benchCycleZH[cycle], pick(g, benchPurposes))
	share := pick(g, benchShare)
	var methods []string
	if share != "none" {
		for _, m := range benchMethods {
			if g.rng.IntN(3) == 0 {
				methods = append(methods, m)
			}
		}
		if len(methods) == 0 {
			methods = []string{"api"}
		}
	}
	class := s.class + fmt.Sprintf("%02d", g.rng.IntN(20))
	return Document{
		ID: id, Code: fmt.Sprintf("%s%06d", class, id), Name: name, Abstract: abstract,
		Keywords: s.keywords, ItemNames: items,
		DeptID: g.deptID(dept), DeptName: dept,
		ClassCode: class, ShareType: share, ShareMethods: methods,
		OpenType: pick(g, benchOpen), UpdateCycle: benchCycles[cycle], FormatClass: pick(g, benchFormats),
		PublishedAt: time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(g.rng.IntN(7*365*24)) * time.Hour),
		Popularity:  float64(g.rng.IntN(1000)),
	}
}

// benchQueryTexts draws k queries of the given length from the subjects'
// names, so most of them match something, as real catalog searches do.
func benchQueryTexts(runes, k int) []string {
	g := &benchGen{rng: rand.New(rand.NewPCG(uint64(runes), 7))}
	out := make([]string, 0, k)
	for len(out) < k {
		r := []rune(pick(g, benchSubjects).name)
		if len(r) < runes {
			continue
		}
		i := g.rng.IntN(len(r) - runes + 1)
		out = append(out, string(r[i:i+runes]))
	}
	return out
}
