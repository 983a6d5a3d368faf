package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/policy"
	"govshare/internal/store"
)

// Rating is one user's stars and comment on an entry.
type Rating struct {
	EntryID   int64     `json:"entry_id"`
	UserID    int64     `json:"user_id"`
	UserName  string    `json:"user_name"`
	DeptID    int64     `json:"dept_id"`
	Stars     int       `json:"stars" minimum:"1" maximum:"5"`
	Comment   string    `json:"comment,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// RatingSummary is an entry's average and its ratings, newest first.
type RatingSummary struct {
	Average float64  `json:"average"`
	Count   int      `json:"count"`
	Ratings []Rating `json:"ratings"`
}

// Errors of ratings.
var (
	ErrStars        = apperr.Invalid("catalog.rating_stars_invalid", "stars", "评分应为1到5星", "a rating is 1 to 5 stars")
	ErrComment      = apperr.Invalid("catalog.rating_comment_long", "comment", "评论不超过500个字符", "a comment has at most 500 characters")
	ErrOwnRating    = apperr.New(403, "catalog.rating_own", "不能评价本部门提供的信息资源", "you cannot rate your own department's resource")
	ErrNotPublished = apperr.New(409, "catalog.not_published", "信息资源尚未发布", "the resource is not published")
)

// Rate records (or replaces) the actor's rating of a published entry.
// Only users of other departments rate: ratings are the users' voice.
func (s *Service) Rate(ctx context.Context, actor policy.Actor, id int64, stars int, comment string) error {
	if err := s.authorize(ctx, actor, policy.CatalogRate, actor.DeptID, "catalog_entry", itoa(id)); err != nil {
		return err
	}
	comment = strings.TrimSpace(comment)
	if stars < 1 || stars > 5 {
		return ErrStars
	}
	if utf8.RuneCountInString(comment) > 500 {
		return ErrComment
	}
	e, err := s.Entry(ctx, actor, id)
	if err != nil {
		return err
	}
	if e.PublishedVersion == 0 || e.State == Retired {
		return ErrNotPublished
	}
	if e.DeptID == actor.DeptID {
		_ = s.audit.Append(ctx, audit.By(actor, string(policy.CatalogRate), "catalog_entry", itoa(id), audit.ResultDenied, map[string]any{"reason": ErrOwnRating.Code}))
		return ErrOwnRating
	}
	now := s.now()
	if _, err := s.db.Exec(ctx, `INSERT INTO entry_ratings (entry_id, user_id, dept_id, stars, comment, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (entry_id, user_id) DO UPDATE SET stars = excluded.stars, comment = excluded.comment, updated_at = excluded.updated_at`,
		id, actor.UserID, actor.DeptID, stars, comment, now, now); err != nil {
		return fmt.Errorf("rate entry %d: %w", id, err)
	}
	s.changed(ctx, id) // popularity moved
	return s.record(ctx, actor, "catalog.entry.rate", "catalog_entry", itoa(id), map[string]any{"stars": stars})
}

// Ratings returns an entry's ratings.
func (s *Service) Ratings(ctx context.Context, id int64) (RatingSummary, error) {
	var sum RatingSummary
	rows, err := s.db.Query(ctx, `SELECT r.entry_id, r.user_id, u.name, r.dept_id, r.stars, r.comment, r.updated_at
		FROM entry_ratings r JOIN users u ON u.id = r.user_id WHERE r.entry_id = ? ORDER BY r.updated_at DESC LIMIT 200`, id)
	if err != nil {
		return sum, err
	}
	defer rows.Close()
	total := 0
	for rows.Next() {
		var r Rating
		if err := rows.Scan(&r.EntryID, &r.UserID, &r.UserName, &r.DeptID, &r.Stars, &r.Comment, &r.UpdatedAt); err != nil {
			return sum, err
		}
		total += r.Stars
		sum.Ratings = append(sum.Ratings, r)
	}
	if sum.Count = len(sum.Ratings); sum.Count > 0 {
		sum.Average = float64(total) / float64(sum.Count)
	}
	return sum, rows.Err()
}

// Related returns published entries related to e: its explicit related
// codes first, then entries sharing its classification or keywords.
func (s *Service) Related(ctx context.Context, e Entry, limit int) ([]Entry, error) {
	seen := map[int64]bool{e.ID: true}
	var out []Entry
	add := func(q string, args ...any) error {
		rows, err := s.db.Query(ctx, "SELECT "+entryCols+" FROM entries WHERE "+q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() && len(out) < limit {
			x, err := s.scanEntry(rows)
			if err != nil {
				return err
			}
			if !seen[x.ID] {
				seen[x.ID] = true
				out = append(out, x)
			}
		}
		return rows.Err()
	}
	if len(e.Draft.RelatedCodes) > 0 {
		args := make([]any, len(e.Draft.RelatedCodes))
		for i, c := range e.Draft.RelatedCodes {
			args[i] = c
		}
		if err := add("published_version > 0 AND code IN ("+store.Placeholders(len(args))+")", args...); err != nil {
			return nil, err
		}
	}
	for _, kw := range e.Draft.Keywords {
		if len(out) >= limit {
			break
		}
		if err := add(`state = 'published' AND draft LIKE ? ESCAPE '\' ORDER BY id LIMIT 20`, "%"+store.LikeEscape(`"`+kw+`"`)+"%"); err != nil {
			return nil, err
		}
	}
	if len(out) < limit {
		if err := add("state = 'published' AND class_code = ? ORDER BY id LIMIT 20", e.Draft.ClassCode); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Demand is a consumer's request for data no entry offers (需求目录).
type Demand struct {
	ID              int64     `json:"id"`
	Title           string    `json:"title" doc:"需要什么数据 / what data"`
	Description     string    `json:"description" doc:"需求说明 / details"`
	Purpose         string    `json:"purpose" doc:"用途 / why"`
	SuggestedDeptID int64     `json:"suggested_dept_id,omitempty" doc:"认为可能持有的部门 / department thought to hold it"`
	RequesterID     int64     `json:"requester_id"`
	RequesterDeptID int64     `json:"requester_dept_id"`
	State           string    `json:"state" doc:"open 待分派 / routed 已分派 / answered 已答复 / declined 已拒绝"`
	RoutedDeptID    int64     `json:"routed_dept_id,omitempty"`
	EntryID         int64     `json:"entry_id,omitempty" doc:"答复关联的目录条目 / entry that answers it"`
	Answer          string    `json:"answer,omitempty" doc:"答复或拒绝理由 / answer or reason for declining"`
	CreatedAt       time.Time `json:"created_at"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// DemandInput is what a consumer posts.
type DemandInput struct {
	Title           string `json:"title"`
	Description     string `json:"description"`
	Purpose         string `json:"purpose"`
	SuggestedDeptID int64  `json:"suggested_dept_id,omitempty"`
}

// Errors of the demand catalog.
var (
	ErrDemandTitle   = apperr.Invalid("catalog.demand_title_invalid", "title", "需求名称不能为空，且不超过100个字符", "the title is required, at most 100 characters")
	ErrDemandPurpose = apperr.Invalid("catalog.demand_purpose_required", "purpose", "请说明数据用途", "state what the data is for")
	ErrDemandAnswer  = apperr.Invalid("catalog.demand_answer_required", "answer", "请关联目录条目或说明拒绝理由", "link an entry or give a reason for declining")
)

const demandCols = `id, title, description, purpose, COALESCE(suggested_dept_id, 0), requester_id, requester_dept_id, state,
	COALESCE(routed_dept_id, 0), COALESCE(entry_id, 0), answer, created_at, updated_at`

func scanDemand(row interface{ Scan(...any) error }) (Demand, error) {
	var d Demand
	err := row.Scan(&d.ID, &d.Title, &d.Description, &d.Purpose, &d.SuggestedDeptID, &d.RequesterID, &d.RequesterDeptID, &d.State,
		&d.RoutedDeptID, &d.EntryID, &d.Answer, &d.CreatedAt, &d.UpdatedAt)
	return d, err
}

func nullable(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// PostDemand lets any user post a demand for data.
func (s *Service) PostDemand(ctx context.Context, actor policy.Actor, in DemandInput) (Demand, error) {
	if err := s.authorize(ctx, actor, policy.DemandPost, actor.DeptID, "demand", ""); err != nil {
		return Demand{}, err
	}
	in.Title, in.Description, in.Purpose = strings.TrimSpace(in.Title), strings.TrimSpace(in.Description), strings.TrimSpace(in.Purpose)
	if in.Title == "" || utf8.RuneCountInString(in.Title) > 100 {
		return Demand{}, ErrDemandTitle
	}
	if in.Purpose == "" {
		return Demand{}, ErrDemandPurpose
	}
	now := s.now()
	d, err := scanDemand(s.db.QueryRow(ctx, `INSERT INTO demands (title, description, purpose, suggested_dept_id, requester_id, requester_dept_id, state, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?) RETURNING `+demandCols, in.Title, in.Description, in.Purpose, nullable(in.SuggestedDeptID),
		actor.UserID, actor.DeptID, now, now))
	if err != nil {
		return d, fmt.Errorf("post demand: %w", err)
	}
	return d, s.record(ctx, actor, "catalog.demand.post", "demand", itoa(d.ID), map[string]any{"title": d.Title})
}

// RouteDemand sends an open demand to the department that should answer.
func (s *Service) RouteDemand(ctx context.Context, actor policy.Actor, id, deptID int64) (Demand, error) {
	if err := s.authorize(ctx, actor, policy.CatalogReview, 0, "demand", itoa(id)); err != nil {
		return Demand{}, err
	}
	d, err := scanDemand(s.db.QueryRow(ctx, `UPDATE demands SET state = 'routed', routed_dept_id = ?, updated_at = ? WHERE id = ? AND state IN ('open', 'routed') RETURNING `+demandCols,
		deptID, s.now(), id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, ErrState
	} else if err != nil {
		return d, err
	}
	return d, s.record(ctx, actor, "catalog.demand.route", "demand", itoa(id), map[string]any{"dept_id": deptID})
}

// AnswerDemand lets the routed department's data administrator link an
// entry (entryID > 0) or decline with a reason.
func (s *Service) AnswerDemand(ctx context.Context, actor policy.Actor, id, entryID int64, answer string) (Demand, error) {
	answer = strings.TrimSpace(answer)
	if entryID == 0 && answer == "" {
		return Demand{}, ErrDemandAnswer
	}
	cur, err := scanDemand(s.db.QueryRow(ctx, "SELECT "+demandCols+" FROM demands WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return cur, apperr.ErrNotFound
	} else if err != nil {
		return cur, err
	}
	if err := s.authorize(ctx, actor, policy.CatalogEdit, cur.RoutedDeptID, "demand", itoa(id)); err != nil {
		return Demand{}, err
	}
	if cur.State != "routed" {
		return Demand{}, ErrState
	}
	state := "declined"
	if entryID > 0 {
		e, err := s.Entry(ctx, actor, entryID)
		if err != nil {
			return Demand{}, err
		}
		if e.DeptID != actor.DeptID {
			return Demand{}, apperr.Invalid("catalog.demand_entry_foreign", "entry_id", "只能关联本部门的目录条目", "link one of your own department's entries")
		}
		state = "answered"
	}
	d, err := scanDemand(s.db.QueryRow(ctx, `UPDATE demands SET state = ?, entry_id = ?, answer = ?, updated_at = ? WHERE id = ? RETURNING `+demandCols,
		state, nullable(entryID), answer, s.now(), id))
	if err != nil {
		return d, err
	}
	return d, s.record(ctx, actor, "catalog.demand."+map[bool]string{true: "answer", false: "decline"}[entryID > 0], "demand", itoa(id), map[string]any{"entry_id": entryID})
}

// DemandFilter narrows the demand list.
type DemandFilter struct {
	Query  string
	State  string
	DeptID int64 // routed to
}

// Demands lists demands, newest first; the demand catalog is open to all users.
func (s *Service) Demands(ctx context.Context, f DemandFilter) ([]Demand, error) {
	var conds []string
	var args []any
	if f.Query != "" {
		like := "%" + store.LikeEscape(f.Query) + "%"
		conds = append(conds, `(title LIKE ? ESCAPE '\' OR description LIKE ? ESCAPE '\')`)
		args = append(args, like, like)
	}
	if f.State != "" {
		conds = append(conds, "state = ?")
		args = append(args, f.State)
	}
	if f.DeptID != 0 {
		conds = append(conds, "routed_dept_id = ?")
		args = append(args, f.DeptID)
	}
	q := "SELECT " + demandCols + " FROM demands"
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	rows, err := s.db.Query(ctx, q+" ORDER BY id DESC LIMIT 200", args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Demand
	for rows.Next() {
		d, err := scanDemand(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
