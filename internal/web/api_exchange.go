package web

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"govshare/internal/exchange"
	"govshare/internal/exchange/wire"
	"govshare/internal/pki"
	"govshare/internal/policy"
)

// deptScope is the department a list shows: the one asked for, or the
// caller's own — except for those who see every department (platform
// administrators, auditors), who get all when they ask for none.
func deptScope(a policy.Actor, asked int64) int64 {
	if asked != 0 {
		return asked
	}
	if a.Has(policy.PlatformAdmin) || a.Has(policy.Auditor) {
		return 0
	}
	return a.DeptID
}

type deptQuery struct {
	DeptID int64 `query:"dept_id" doc:"部门ID，默认本部门(平台管理员、审计员默认全部) / department; default your own (all for platform administrators and auditors)"`
}

// NodeCreated is a registered node with its one-time enrolment code.
type NodeCreated struct {
	Node      pki.Node  `json:"node"`
	Code      string    `json:"code" doc:"一次性注册码，只显示这一次，24小时内有效 / one-time enrolment code, shown this once, valid for 24 hours"`
	ExpiresAt time.Time `json:"expires_at"`
	Command   string    `json:"command" doc:"在前置机上执行的注册命令 / the command to run on the node"`
}

func (s *Server) nodeCreated(e pki.Enrolment, code, apiBase string) *struct{ Body NodeCreated } {
	return &struct{ Body NodeCreated }{NodeCreated{Node: e.Node, Code: code, ExpiresAt: e.ExpiresAt, Command: enrolCommand(apiBase, code, e.Node.Name)}}
}

// enrolCommand is what a department runs on its node to enrol it.
func enrolCommand(apiBase, code, name string) string {
	return "govshare agent enrol --api " + apiBase + " --code " + code + " --name " + shellQuote(name) + " --data node-data"
}

func shellQuote(s string) string {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			out := "'"
			for _, r := range s {
				if r == '\'' {
					out += `'\''`
				} else {
					out += string(r)
				}
			}
			return out + "'"
		}
	}
	return s
}

// baseURL is the address the caller reached this server at.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

type jobIn struct {
	Body struct {
		NodeID int64 `json:"node_id" doc:"运行任务的前置机 / the node that runs the job"`
		wire.JobSpec
	}
}

type jobOut struct {
	Body exchange.Job
}

type subOut struct {
	Body exchange.Subscription
}

func (s *Server) exchangeAPI(api huma.API) {
	const tag = "交换 Exchange"
	// Nodes (前置机).
	huma.Register(api, op("list-nodes", http.MethodGet, "/api/v1/nodes", tag, "前置机列表(在线状态、版本、心跳、证书到期) / nodes with their state"),
		func(ctx context.Context, in *deptQuery) (*struct{ Body []exchange.NodeInfo }, error) {
			a := principalFrom(ctx).actor()
			out, err := s.Exchange.Nodes(ctx, a, deptScope(a, in.DeptID))
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body []exchange.NodeInfo }{nonNil(out)}, nil
		})
	o := op("create-node", http.MethodPost, "/api/v1/nodes", tag, "登记前置机并生成一次性注册码 / register a node and get its one-time enrolment code")
	o.DefaultStatus = http.StatusCreated
	huma.Register(api, o, func(ctx context.Context, in *struct {
		Body struct {
			DeptID int64  `json:"dept_id,omitempty" doc:"部门，默认本部门 / department; default your own"`
			Name   string `json:"name" doc:"前置机名称 / node name"`
		}
	}) (*struct{ Body NodeCreated }, error) {
		a := principalFrom(ctx).actor()
		dept := in.Body.DeptID
		if dept == 0 {
			dept = a.DeptID
		}
		e, code, err := s.PKI.CreateEnrolment(ctx, a, dept, in.Body.Name)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return s.nodeCreated(e, code, requestBase(ctx)), nil
	})
	huma.Register(api, op("get-node", http.MethodGet, "/api/v1/nodes/{id}", tag, "前置机详情(含数据源和表结构) / a node with its data sources and tables"),
		func(ctx context.Context, in *IDPath) (*struct{ Body exchange.NodeInfo }, error) {
			n, err := s.Exchange.NodeInfo(ctx, principalFrom(ctx).actor(), in.ID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body exchange.NodeInfo }{n}, nil
		})
	huma.Register(api, op("reissue-node-code", http.MethodPost, "/api/v1/nodes/{id}/code", tag, "重新生成注册码(未注册的前置机) / a new enrolment code for a node not enrolled yet"),
		func(ctx context.Context, in *IDPath) (*struct{ Body NodeCreated }, error) {
			e, code, err := s.PKI.ReissueCode(ctx, principalFrom(ctx).actor(), in.ID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return s.nodeCreated(e, code, requestBase(ctx)), nil
		})
	huma.Register(api, op("revoke-node", http.MethodPost, "/api/v1/nodes/{id}/revoke", tag, "吊销前置机(证书立即失效) / revoke a node; its certificate is refused at once"),
		func(ctx context.Context, in *struct {
			IDPath
			reasonBody
		}) (*struct{ Body pki.Node }, error) {
			n, err := s.PKI.Revoke(ctx, principalFrom(ctx).actor(), in.ID, in.Body.Reason)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body pki.Node }{n}, nil
		})
	o = op("enrol-node", http.MethodPost, wire.PathEnrol, tag, "前置机注册：一次性注册码 + 证书请求 → 节点证书 / node enrolment: code + CSR → certificate")
	o.Description = "无需令牌：注册码即凭证，只能使用一次。`govshare agent enrol` 调用此接口；私钥在前置机上生成，不离开前置机。\n\n" +
		"No token: the one-time code is the credential. `govshare agent enrol` calls this; the key is made on the node and never leaves it."
	o.Security = []map[string][]string{} // public
	huma.Register(api, o, func(ctx context.Context, in *struct{ Body wire.Enrolment }) (*struct{ Body wire.Enrolled }, error) {
		cert, ca, err := s.PKI.Enrol(ctx, in.Body.Code, []byte(in.Body.CSR))
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		out := wire.Enrolled{Certificate: string(cert), CA: string(ca)}
		if s.NodeURL != nil {
			out.NodeURL = s.NodeURL()
		}
		return &struct{ Body wire.Enrolled }{out}, nil
	})

	// Jobs (交换任务).
	huma.Register(api, op("list-exchange-jobs", http.MethodGet, "/api/v1/exchange/jobs", tag, "交换任务列表(状态、调度、上次运行、延迟、速率) / exchange jobs"),
		func(ctx context.Context, in *deptQuery) (*struct{ Body []exchange.Job }, error) {
			a := principalFrom(ctx).actor()
			out, err := s.Exchange.Jobs(ctx, a, deptScope(a, in.DeptID))
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body []exchange.Job }{nonNil(out)}, nil
		})
	o = op("create-exchange-job", http.MethodPost, "/api/v1/exchange/jobs", tag, "新建交换任务并下发到前置机 / create a job; its node picks it up")
	o.DefaultStatus = http.StatusCreated
	huma.Register(api, o, func(ctx context.Context, in *jobIn) (*jobOut, error) {
		return s.jobResult(ctx)(s.Exchange.CreateJob(ctx, principalFrom(ctx).actor(), in.Body.NodeID, in.Body.JobSpec))
	})
	huma.Register(api, op("get-exchange-job", http.MethodGet, "/api/v1/exchange/jobs/{id}", tag, "交换任务 / a job"),
		func(ctx context.Context, in *IDPath) (*jobOut, error) {
			return s.jobResult(ctx)(s.Exchange.Job(ctx, principalFrom(ctx).actor(), in.ID))
		})
	huma.Register(api, op("update-exchange-job", http.MethodPut, "/api/v1/exchange/jobs/{id}", tag, "修改交换任务(前置机随即采用) / change a job; the node takes the change"),
		func(ctx context.Context, in *struct {
			IDPath
			Body wire.JobSpec
		}) (*jobOut, error) {
			return s.jobResult(ctx)(s.Exchange.UpdateJob(ctx, principalFrom(ctx).actor(), in.ID, in.Body))
		})
	huma.Register(api, op("control-exchange-job", http.MethodPost, "/api/v1/exchange/jobs/{id}/{action}", tag, "启动、停止、立即运行一次 / start, stop or run once now"),
		func(ctx context.Context, in *struct {
			IDPath
			Action string `path:"action" enum:"start,stop,run"`
		}) (*jobOut, error) {
			return s.jobResult(ctx)(s.Exchange.ControlJob(ctx, principalFrom(ctx).actor(), in.ID, exchange.JobAction(in.Action)))
		})
	huma.Register(api, op("delete-exchange-job", http.MethodDelete, "/api/v1/exchange/jobs/{id}", tag, "删除交换任务 / delete a job"),
		func(ctx context.Context, in *IDPath) (*jobOut, error) {
			return s.jobResult(ctx)(s.Exchange.ControlJob(ctx, principalFrom(ctx).actor(), in.ID, exchange.JobDelete))
		})

	// Subscriptions (交换桥接).
	huma.Register(api, op("list-exchange-subscriptions", http.MethodGet, "/api/v1/exchange/subscriptions", tag, "交换订阅列表(本部门接收或提供的) / subscriptions the department receives or provides"),
		func(ctx context.Context, in *deptQuery) (*struct{ Body []exchange.Subscription }, error) {
			a := principalFrom(ctx).actor()
			out, err := s.Exchange.Subscriptions(ctx, a, deptScope(a, in.DeptID))
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body []exchange.Subscription }{nonNil(out)}, nil
		})
	o = op("create-exchange-subscription", http.MethodPost, "/api/v1/exchange/subscriptions", tag, "订阅资源到本部门前置机的目标表 / deliver a granted resource into a table at your node")
	o.Description = "只能使用含“库表交换”方式的有效授权；只交付授权的信息项，按授权脱敏并限定行范围；授权撤销或到期即停止。\n\n" +
		"Needs a valid grant that allows exchange; only granted items are delivered, masked as the grant says and limited to its row scope; delivery stops when the grant is revoked or expires."
	o.DefaultStatus = http.StatusCreated
	huma.Register(api, o, func(ctx context.Context, in *struct{ Body exchange.SubscriptionRequest }) (*subOut, error) {
		return s.subResult(ctx)(s.Exchange.CreateSubscription(ctx, principalFrom(ctx).actor(), in.Body))
	})
	huma.Register(api, op("get-exchange-subscription", http.MethodGet, "/api/v1/exchange/subscriptions/{id}", tag, "交换订阅 / a subscription"),
		func(ctx context.Context, in *IDPath) (*subOut, error) {
			return s.subResult(ctx)(s.Exchange.Subscription(ctx, principalFrom(ctx).actor(), in.ID))
		})
	huma.Register(api, op("control-exchange-subscription", http.MethodPost, "/api/v1/exchange/subscriptions/{id}/{action}", tag, "停止、恢复、重新全量同步 / stop, start or re-sync"),
		func(ctx context.Context, in *struct {
			IDPath
			Action string `path:"action" enum:"stop,start,resync"`
		}) (*subOut, error) {
			return s.subResult(ctx)(s.Exchange.ControlSubscription(ctx, principalFrom(ctx).actor(), in.ID, exchange.SubscriptionAction(in.Action)))
		})
	huma.Register(api, op("delete-exchange-subscription", http.MethodDelete, "/api/v1/exchange/subscriptions/{id}", tag, "删除交换订阅 / delete a subscription"),
		func(ctx context.Context, in *IDPath) (*subOut, error) {
			return s.subResult(ctx)(s.Exchange.ControlSubscription(ctx, principalFrom(ctx).actor(), in.ID, exchange.SubDelete))
		})

	// Runs and alarms (桥接核对、桥接监控).
	huma.Register(api, op("list-exchange-runs", http.MethodGet, "/api/v1/exchange/runs", tag, "运行记录(发送方与接收方计数) / runs with both sides' counts"),
		func(ctx context.Context, in *struct {
			JobID          int64  `query:"job_id"`
			SubscriptionID int64  `query:"subscription_id"`
			State          string `query:"state" enum:"running,complete,mismatch"`
			Limit          int    `query:"limit" doc:"最多条数(默认100，≤1000) / at most (default 100, ≤1000)"`
		}) (*struct{ Body []exchange.Run }, error) {
			out, err := s.Exchange.Runs(ctx, principalFrom(ctx).actor(), exchange.RunFilter{JobID: in.JobID, SubscriptionID: in.SubscriptionID, State: in.State, Limit: in.Limit})
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body []exchange.Run }{nonNil(out)}, nil
		})
	huma.Register(api, op("list-exchange-alarms", http.MethodGet, "/api/v1/exchange/alarms", tag, "交换告警(默认未关闭的) / exchange alarms (open ones by default)"),
		func(ctx context.Context, in *struct {
			All bool `query:"all" doc:"含已关闭的 / include closed ones"`
		}) (*struct{ Body []exchange.Alarm }, error) {
			out, err := s.Exchange.Alarms(ctx, principalFrom(ctx).actor(), in.All)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body []exchange.Alarm }{nonNil(out)}, nil
		})
	huma.Register(api, op("close-exchange-alarm", http.MethodPost, "/api/v1/exchange/alarms/{id}/close", tag, "关闭告警(须说明处理情况) / close an alarm with a note"),
		func(ctx context.Context, in *struct {
			IDPath
			Body struct {
				Note string `json:"note" doc:"处理情况 / what was done"`
			}
		}) (*struct{ Body exchange.Alarm }, error) {
			a, err := s.Exchange.CloseAlarm(ctx, principalFrom(ctx).actor(), in.ID, in.Body.Note)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &struct{ Body exchange.Alarm }{a}, nil
		})
}

func (s *Server) jobResult(ctx context.Context) func(exchange.Job, error) (*jobOut, error) {
	return func(j exchange.Job, err error) (*jobOut, error) {
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &jobOut{j}, nil
	}
}

func (s *Server) subResult(ctx context.Context) func(exchange.Subscription, error) (*subOut, error) {
	return func(x exchange.Subscription, err error) (*subOut, error) {
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &subOut{x}, nil
	}
}

// nonNil makes an empty list answer [] rather than null.
func nonNil[T any](v []T) []T {
	if v == nil {
		return []T{}
	}
	return v
}

type checkOut struct {
	Body exchange.Check
}

// checkAPI: full checks (全量核对) of jobs and subscriptions.
func (s *Server) checkAPI(api huma.API) {
	const tag = "交换 Exchange"
	for _, k := range []struct{ kind, path, zh string }{{"job", "jobs", "交换任务"}, {"subscription", "subscriptions", "订阅"}} {
		o := op("request-"+k.kind+"-check", http.MethodPost, "/api/v1/exchange/"+k.path+"/{id}/checks", tag, "全量核对"+k.zh+" / full check of a "+k.kind)
		o.Description = "按主键分块比较两端每条记录的校验值，列出不一致的主键；由前置机执行，完成后结果可查，有差异即告警。\n\n" +
			"Compares per-key checksums of both sides in chunks and lists the keys that differ; the node runs it, the result is kept, and differences raise an alarm."
		o.DefaultStatus = http.StatusCreated
		kind := k.kind
		huma.Register(api, o, func(ctx context.Context, in *IDPath) (*checkOut, error) {
			c, err := s.Exchange.RequestCheck(ctx, principalFrom(ctx).actor(), kind, in.ID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &checkOut{c}, nil
		})
		huma.Register(api, op("list-"+k.kind+"-checks", http.MethodGet, "/api/v1/exchange/"+k.path+"/{id}/checks", tag, k.zh+"的全量核对记录 / full checks of a "+k.kind),
			func(ctx context.Context, in *IDPath) (*struct{ Body []exchange.Check }, error) {
				out, err := s.Exchange.Checks(ctx, principalFrom(ctx).actor(), kind, in.ID)
				if err != nil {
					return nil, s.fail(ctx, err)
				}
				return &struct{ Body []exchange.Check }{nonNil(out)}, nil
			})
	}
	huma.Register(api, op("get-exchange-check", http.MethodGet, "/api/v1/exchange/checks/{id}", tag, "全量核对结果(含不一致的主键) / a full check with the keys that differ"),
		func(ctx context.Context, in *IDPath) (*checkOut, error) {
			c, err := s.Exchange.Check(ctx, principalFrom(ctx).actor(), in.ID)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			return &checkOut{c}, nil
		})
	o := op("cancel-exchange-check", http.MethodPost, "/api/v1/exchange/checks/{id}/cancel", tag, "取消等待或进行中的全量核对 / cancel a waiting or running full check")
	o.Description = "由可发起该核对的人取消；前置机不再执行。已结束的核对不能取消(exchange.check_over)。前置机24小时内未开始的核对自动以失败结束。\n\n" +
		"Those who may request the check may cancel it; the node stops running it. A check that is over cannot be cancelled (exchange.check_over). " +
		"A check no node has started within 24 hours fails by itself."
	huma.Register(api, o, func(ctx context.Context, in *IDPath) (*checkOut, error) {
		c, err := s.Exchange.CancelCheck(ctx, principalFrom(ctx).actor(), in.ID)
		if err != nil {
			return nil, s.fail(ctx, err)
		}
		return &checkOut{c}, nil
	})
}
