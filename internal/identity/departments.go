package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/policy"
	"govshare/internal/store"
)

func itoa(i int64) string { return strconv.FormatInt(i, 10) }

// DepartmentInput is what an administrator fills in for a department.
type DepartmentInput struct {
	ParentID   int64  `json:"parent_id,omitempty" doc:"上级部门ID，0为顶级 / parent department id, 0 for top level"`
	Name       string `json:"name" doc:"部门名称 / department name" maxLength:"100"`
	CreditCode string `json:"credit_code" doc:"统一社会信用代码(GB 32100) / unified social credit code"`
	RegionCode string `json:"region_code" doc:"行政区划代码(6位) / region code (6 digits)"`
	Status     string `json:"status,omitempty" enum:"active,disabled" doc:"状态 / status (default active)"`
}

func (in *DepartmentInput) normalize() error {
	in.Name = strings.TrimSpace(in.Name)
	in.CreditCode = strings.ToUpper(strings.TrimSpace(in.CreditCode))
	in.RegionCode = strings.TrimSpace(in.RegionCode)
	if in.Status == "" {
		in.Status = StatusActive
	}
	switch {
	case in.Name == "" || utf8.RuneCountInString(in.Name) > 100:
		return ErrDeptName
	case !ValidCreditCode(in.CreditCode):
		return ErrCreditCode
	case !ValidRegionCode(in.RegionCode):
		return ErrRegionCode
	case in.Status != StatusActive && in.Status != StatusDisabled:
		return ErrDeptStatus
	}
	return nil
}

const deptCols = "id, COALESCE(parent_id, 0), name, credit_code, region_code, status, created_at, updated_at"

func scanDept(row interface{ Scan(...any) error }) (Department, error) {
	var d Department
	err := row.Scan(&d.ID, &d.ParentID, &d.Name, &d.CreditCode, &d.RegionCode, &d.Status, &d.CreatedAt, &d.UpdatedAt)
	return d, err
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// CreateDepartment adds a department.
func (s *Service) CreateDepartment(ctx context.Context, actor policy.Actor, in DepartmentInput) (Department, error) {
	if err := s.authorize(ctx, actor, policy.DeptCreate, policy.Target{}, "department", ""); err != nil {
		return Department{}, err
	}
	return s.createDepartment(ctx, actor, in)
}

func (s *Service) createDepartment(ctx context.Context, actor policy.Actor, in DepartmentInput) (Department, error) {
	if err := in.normalize(); err != nil {
		return Department{}, err
	}
	var d Department
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		if in.ParentID != 0 {
			if err := tx.QueryRow(ctx, "SELECT id FROM departments WHERE id = ?", in.ParentID).Scan(new(int64)); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					return ErrDeptParent
				}
				return err
			}
		}
		now := s.now()
		var err error
		d, err = scanDept(tx.QueryRow(ctx, `INSERT INTO departments (parent_id, name, credit_code, region_code, status, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING `+deptCols, nullID(in.ParentID), in.Name, in.CreditCode, in.RegionCode, in.Status, now, now))
		if store.IsUniqueViolation(err) {
			return ErrCreditCodeUsed
		}
		return err
	})
	if err != nil {
		return Department{}, fmt.Errorf("create department: %w", err)
	}
	return d, s.record(ctx, actor, "dept.create", "department", itoa(d.ID), audit.ResultOK, map[string]any{
		"name": d.Name, "credit_code": d.CreditCode, "region_code": d.RegionCode, "parent_id": d.ParentID})
}

// UpdateDepartment changes a department's attributes.
func (s *Service) UpdateDepartment(ctx context.Context, actor policy.Actor, id int64, in DepartmentInput) (Department, error) {
	if err := s.authorize(ctx, actor, policy.DeptUpdate, policy.Target{DeptID: id}, "department", itoa(id)); err != nil {
		return Department{}, err
	}
	if err := in.normalize(); err != nil {
		return Department{}, err
	}
	var before, d Department
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var err error
		before, err = scanDept(tx.QueryRow(ctx, "SELECT "+deptCols+" FROM departments WHERE id = ?", id))
		if errors.Is(err, sql.ErrNoRows) {
			return apperr.ErrNotFound
		} else if err != nil {
			return err
		}
		if in.ParentID != 0 {
			// Walk up from the new parent: meeting id means a cycle.
			p := in.ParentID
			for steps := 0; p != 0; steps++ {
				if p == id || steps > 64 {
					return ErrDeptParent
				}
				var next int64
				if err := tx.QueryRow(ctx, "SELECT COALESCE(parent_id, 0) FROM departments WHERE id = ?", p).Scan(&next); err != nil {
					if errors.Is(err, sql.ErrNoRows) {
						return ErrDeptParent
					}
					return err
				}
				p = next
			}
		}
		d, err = scanDept(tx.QueryRow(ctx, `UPDATE departments SET parent_id = ?, name = ?, credit_code = ?, region_code = ?, status = ?, updated_at = ?
			WHERE id = ? RETURNING `+deptCols, nullID(in.ParentID), in.Name, in.CreditCode, in.RegionCode, in.Status, s.now(), id))
		if store.IsUniqueViolation(err) {
			return ErrCreditCodeUsed
		}
		return err
	})
	if err != nil {
		return Department{}, fmt.Errorf("update department %d: %w", id, err)
	}
	return d, s.record(ctx, actor, "dept.update", "department", itoa(id), audit.ResultOK, diff(
		"name", before.Name, d.Name, "credit_code", before.CreditCode, d.CreditCode, "region_code", before.RegionCode, d.RegionCode,
		"status", before.Status, d.Status, "parent_id", before.ParentID, d.ParentID))
}

// diff lists the changed fields of name, old, new triples for the audit log.
func diff(kv ...any) map[string]any {
	out := map[string]any{}
	for i := 0; i+2 < len(kv); i += 3 {
		if fmt.Sprint(kv[i+1]) != fmt.Sprint(kv[i+2]) {
			out[kv[i].(string)] = map[string]any{"from": kv[i+1], "to": kv[i+2]}
		}
	}
	return out
}

// Department returns one department.
func (s *Service) Department(ctx context.Context, id int64) (Department, error) {
	d, err := scanDept(s.db.QueryRow(ctx, "SELECT "+deptCols+" FROM departments WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return d, apperr.ErrNotFound
	}
	return d, err
}

// DepartmentByCode finds a department by its credit code.
func (s *Service) DepartmentByCode(ctx context.Context, code string) (Department, error) {
	d, err := scanDept(s.db.QueryRow(ctx, "SELECT "+deptCols+" FROM departments WHERE credit_code = ?", strings.ToUpper(code)))
	if errors.Is(err, sql.ErrNoRows) {
		return d, apperr.ErrNotFound
	}
	return d, err
}

// Departments lists every department in tree order (each parent before its
// children, siblings by name) with Depth set.
func (s *Service) Departments(ctx context.Context) ([]Department, error) {
	rows, err := s.db.Query(ctx, "SELECT "+deptCols+" FROM departments ORDER BY name, id")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	children := map[int64][]Department{}
	ids := map[int64]bool{}
	var all []Department
	for rows.Next() {
		d, err := scanDept(rows)
		if err != nil {
			return nil, err
		}
		all = append(all, d)
		ids[d.ID] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, d := range all {
		p := d.ParentID
		if !ids[p] {
			p = 0
		}
		children[p] = append(children[p], d)
	}
	out := make([]Department, 0, len(all))
	var walk func(parent int64, depth int)
	walk = func(parent int64, depth int) {
		for _, d := range children[parent] {
			d.Depth = depth
			out = append(out, d)
			walk(d.ID, depth+1)
		}
	}
	walk(0, 0)
	return out, nil
}

// DepartmentCount returns how many departments exist.
func (s *Service) DepartmentCount(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, "SELECT COUNT(*) FROM departments").Scan(&n)
	return n, err
}
