package web

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"govshare/internal/dataservice"
)

// Comparison jobs (数据比对任务): a consumer uploads up to a million
// records as CSV and later fetches the answers, match or mismatch per
// item or not found, as CSV; never the stored data. The upload is
// handed to the service as a stream.

// verifyJobCreate is the upload: the body is read by the service, not
// by huma, which would hold it in memory.
type verifyJobCreate struct {
	Resource string `path:"resource" doc:"信息资源代码 / resource code"`
	Items    string `query:"items" doc:"要比对的信息项，逗号分隔；不填则为首行中主键以外的全部信息项 / items to compare, comma-separated; default: every item the first row names besides the key" example:"name,birth_date"`
	body     io.Reader
}

// Resolve takes the body as it arrives.
func (in *verifyJobCreate) Resolve(ctx huma.Context) []error {
	in.body = ctx.BodyReader()
	return nil
}

// verifyJobItems reads a comma-separated list of items.
func verifyJobItems(s string) []string {
	var out []string
	for _, it := range strings.Split(s, ",") {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out
}

// startOnWrite sets a download's headers and status when its first byte
// is written, so that a refusal before that still answers with its own
// status.
type startOnWrite struct {
	start func() io.Writer
	w     io.Writer
}

func (s *startOnWrite) Write(p []byte) (int, error) {
	if s.w == nil {
		s.w = s.start()
	}
	return s.w.Write(p)
}

func (s *startOnWrite) started() bool { return s.w != nil }

// verifyResultName is the file name of a job's result.
func verifyResultName(id int64) string {
	return "verify-job-" + strconv.FormatInt(id, 10) + "-result.csv"
}

func (s *Server) verifyJobsAPI(api huma.API) {
	c := op("create-verify-job", http.MethodPost, "/api/v1/verify/{resource}/jobs", dataTag,
		"创建比对任务 / create a comparison job (最多1000000条 / up to 1,000,000 records)")
	c.Description = "请求体为 CSV(text/csv，UTF-8)：首行为信息项字段名(主键信息项与要比对的信息项，其他列忽略)，每行一条记录；逐条检查，" +
		"缺主键的行使整个上传被拒绝(答复指出行号和信息项，什么也不保存)。全部记录在创建时计入当日比对额度。答复202及任务；" +
		"任务在后台逐块比对，进度见 GET /api/v1/verify/jobs/{id}，完成后从 /result 下载结果(保留7天)。用途(X-Purpose)必填并记录。\n\n" +
		"The body is CSV (text/csv, UTF-8): the first row names the items (the key items and the items to compare; other columns are ignored), " +
		"one record a row. Every record is checked; a row without its key refuses the whole upload, naming the row and the item, and nothing is stored. " +
		"All records count against today's comparison quota when the job is created. Answers 202 with the job, which is compared in the background " +
		"chunk by chunk: follow it at GET /api/v1/verify/jobs/{id} and fetch the result from /result when done (kept 7 days). " +
		"The purpose (X-Purpose) is required and recorded."
	c.DefaultStatus = http.StatusAccepted
	c.Errors = append(errorStatuses, http.StatusRequestEntityTooLarge, http.StatusTooManyRequests)
	c.RequestBody = &huma.RequestBody{Description: "CSV，首行为信息项字段名 / CSV with the item names in its first row", Required: true,
		Content: map[string]*huma.MediaType{"text/csv": {Schema: &huma.Schema{Type: "string"},
			Example: "id_number,name,birth_date\n350102199003074514,王测,1990-03-07\n"}}}
	huma.Register(api, c, func(ctx context.Context, in *verifyJobCreate) (*struct{ Body dataservice.VerifyJob }, error) {
		j, err := s.Data.CreateVerifyJob(ctx, dataCaller(ctx), in.Resource, verifyJobItems(in.Items), in.body)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &struct{ Body dataservice.VerifyJob }{Body: j}, nil
	})

	huma.Register(api, op("list-verify-jobs", http.MethodGet, "/api/v1/verify/jobs", dataTag,
		"比对任务列表 / comparison jobs (本部门；平台管理员、审计员为全部 / the department's; every department's for platform administrators and auditors)"),
		func(ctx context.Context, in *struct {
			Limit int `query:"limit" minimum:"0" maximum:"500" doc:"条数(默认50) / how many (default 50)"`
		}) (*struct{ Body []dataservice.VerifyJob }, error) {
			list, err := s.Data.VerifyJobs(ctx, dataCaller(ctx), in.Limit)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if list == nil {
				list = []dataservice.VerifyJob{}
			}
			return &struct{ Body []dataservice.VerifyJob }{Body: list}, nil
		})

	huma.Register(api, op("get-verify-job", http.MethodGet, "/api/v1/verify/jobs/{id}", dataTag,
		"比对任务及进度 / a comparison job and its progress"),
		func(ctx context.Context, in *IDPath) (*struct{ Body dataservice.VerifyJob }, error) {
			j, err := s.Data.VerifyJob(ctx, dataCaller(ctx), in.ID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body dataservice.VerifyJob }{Body: j}, nil
		})

	r := op("get-verify-job-result", http.MethodGet, "/api/v1/verify/jobs/{id}/result", dataTag,
		"下载比对结果 / download a comparison job's result (CSV)")
	r.Description = "CSV：index(记录在上传文件中的序号，从0起)、result(match / mismatch / not_found)，然后每个比对信息项的 match 或 mismatch(未找到时为空)；" +
		"从不含存储的数据。仅创建任务的部门可下载，下载记入审计。\n\n" +
		"CSV: index (the record's position in the upload, from 0), result (match / mismatch / not_found), then match or mismatch for each compared item " +
		"(empty when not found); never a stored value. Only the department that created the job may fetch it; every fetch is audited."
	r.Errors = append(errorStatuses, http.StatusGone)
	r.Responses = map[string]*huma.Response{"200": {Description: "CSV", Content: map[string]*huma.MediaType{"text/csv": {}}}}
	huma.Register(api, r, func(ctx context.Context, in *IDPath) (*huma.StreamResponse, error) {
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			w := &startOnWrite{start: func() io.Writer {
				hctx.SetHeader("Content-Type", "text/csv; charset=utf-8")
				hctx.SetHeader("Content-Disposition", `attachment; filename="`+verifyResultName(in.ID)+`"`)
				hctx.SetStatus(http.StatusOK)
				return hctx.BodyWriter()
			}}
			_, err := s.Data.WriteVerifyJobResult(ctx, dataCaller(ctx), in.ID, w)
			switch {
			case err != nil && !w.started():
				_ = s.fail(ctx, err) // logs what is not a refusal
				s.writeAPIError(hctx, err)
			case err != nil:
				s.Log.Warn("comparison result interrupted", "request_id", requestID(ctx), "job", in.ID, "err", err)
			}
		}}, nil
	})
}
