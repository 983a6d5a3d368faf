package exchange

import (
	"context"
	"database/sql"
	"encoding/json"
	"time"

	"govshare/internal/exchange/wire"
	"govshare/internal/pki"
	"govshare/internal/policy"
	"govshare/internal/store"
)

// OfflineAfter is how long a node may be silent before the monitoring page
// shows it offline: heartbeats come every few seconds.
const OfflineAfter = 30 * time.Second

// NodeInfo is a node as the monitoring page shows it (桥接监控): its
// certificate and enrolment from the CA, and what its heartbeats said.
type NodeInfo struct {
	pki.Node
	Online        bool              `json:"online" doc:"最近30秒内有心跳 / heard from in the last 30 s"`
	Version       string            `json:"version,omitempty" doc:"前置机软件版本 / agent version"`
	StartedAt     time.Time         `json:"started_at,omitzero" doc:"前置机启动时间 / when the agent started"`
	Sources       []wire.SourceInfo `json:"sources,omitempty" doc:"数据源及其表结构 / data sources with their tables"`
	Jobs          int               `json:"jobs" doc:"交换任务数 / exchange jobs"`
	Subscriptions int               `json:"subscriptions" doc:"订阅数 / subscriptions"`
}

// Nodes lists a department's nodes (0: every department's, for those who
// may see all) with their heartbeat state.
func (s *Service) Nodes(ctx context.Context, actor policy.Actor, deptID int64) ([]NodeInfo, error) {
	if err := s.authorize(ctx, actor, policy.ExchangeView, deptID, "node", ""); err != nil {
		return nil, err
	}
	where, args := "", []any(nil)
	if deptID != 0 {
		where, args = " WHERE dept_id = ?", []any{deptID}
	}
	nodes, err := store.All(ctx, s.DB, pki.ScanNode, "SELECT "+pki.NodeColumns+" FROM nodes"+where+" ORDER BY id DESC", args...)
	if err != nil {
		return nil, err
	}
	out := make([]NodeInfo, len(nodes))
	for i, n := range nodes {
		if out[i], err = s.nodeInfo(ctx, n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// NodeInfo returns one node with its heartbeat state and data sources.
func (s *Service) NodeInfo(ctx context.Context, actor policy.Actor, id int64) (NodeInfo, error) {
	n, err := s.PKI.Load(ctx, id)
	if err != nil {
		return NodeInfo{}, err
	}
	if err := s.authorize(ctx, actor, policy.ExchangeView, n.DeptID, "node", itoa(id)); err != nil {
		return NodeInfo{}, err
	}
	return s.nodeInfo(ctx, n)
}

func (s *Service) nodeInfo(ctx context.Context, n pki.Node) (NodeInfo, error) {
	info := NodeInfo{Node: n}
	var started sql.NullTime
	var sources string
	err := s.DB.QueryRow(ctx, `SELECT version, started_at, sources,
		(SELECT COUNT(*) FROM exchange_jobs WHERE node_id = n.id AND deleted_at IS NULL),
		(SELECT COUNT(*) FROM exchange_subscriptions WHERE node_id = n.id AND state <> 'deleted')
		FROM nodes n WHERE n.id = ?`, n.ID).Scan(&info.Version, &started, &sources, &info.Jobs, &info.Subscriptions)
	if err != nil {
		return info, err
	}
	info.StartedAt = started.Time
	if sources != "" {
		if err := json.Unmarshal([]byte(sources), &info.Sources); err != nil {
			return info, err
		}
	}
	info.Online = n.State == pki.NodeActive && !n.LastSeenAt.IsZero() && s.now().Sub(n.LastSeenAt) < OfflineAfter
	return info, nil
}
