package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"govshare/internal/apperr"
	"govshare/internal/audit"
	"govshare/internal/policy"
	"govshare/internal/store"
)

// UserInput is what an administrator fills in for a new user.
type UserInput struct {
	Login    string        `json:"login" doc:"登录名 / login" pattern:"^[a-z0-9_.-]{3,32}$"`
	Name     string        `json:"name" doc:"姓名 / name"`
	Mobile   string        `json:"mobile,omitempty" doc:"手机号码 / mobile number"`
	DeptID   int64         `json:"dept_id" doc:"所属部门ID / department id"`
	Roles    []policy.Role `json:"roles" doc:"角色 / roles"`
	Password string        `json:"password" doc:"初始密码，首次登录须修改 / initial password, changed at first login"`
}

// UserUpdate is what an administrator may change on a user.
type UserUpdate struct {
	Name   string        `json:"name"`
	Mobile string        `json:"mobile,omitempty"`
	DeptID int64         `json:"dept_id"`
	Roles  []policy.Role `json:"roles"`
	Status string        `json:"status" enum:"active,disabled"`
}

var (
	loginRE  = regexp.MustCompile(`^[a-z0-9_.-]{3,32}$`)
	mobileRE = regexp.MustCompile(`^1[3-9][0-9]{9}$`)
)

// ValidateRoles checks the roles exist and that no one holds two of the
// three administrator duties (三员分立).
func ValidateRoles(roles []policy.Role) error {
	if len(roles) == 0 {
		return ErrNoRole
	}
	admin := 0
	for _, r := range roles {
		if !r.Valid() {
			return ErrRole
		}
		if r.Admin() {
			admin++
		}
	}
	if admin > 1 {
		return ErrRolesSeparated
	}
	return nil
}

func normRoles(roles []policy.Role) []policy.Role {
	out := slices.Clone(roles)
	slices.Sort(out)
	return slices.Compact(out)
}

func hasAdmin(roles []policy.Role) bool {
	return slices.ContainsFunc(roles, policy.Role.Admin)
}

func checkNameMobile(name, mobile string) error {
	if name == "" || utf8.RuneCountInString(name) > 50 {
		return ErrUserName
	}
	if mobile != "" && !mobileRE.MatchString(mobile) {
		return ErrMobile
	}
	return nil
}

// CreateUser adds a user who must change the password at first login.
func (s *Service) CreateUser(ctx context.Context, actor policy.Actor, in UserInput) (User, error) {
	in.Login = strings.TrimSpace(in.Login)
	in.Name = strings.TrimSpace(in.Name)
	in.Mobile = strings.TrimSpace(in.Mobile)
	in.Roles = normRoles(in.Roles)
	t := policy.Target{DeptID: in.DeptID, AdminUser: hasAdmin(in.Roles)}
	if err := s.authorize(ctx, actor, policy.UserCreate, t, "user", in.Login); err != nil {
		return User{}, err
	}
	if t.AdminUser {
		if err := s.authorize(ctx, actor, policy.UserAssignAdmin, t, "user", in.Login); err != nil {
			return User{}, err
		}
	}
	return s.createUser(ctx, actor, in)
}

func (s *Service) createUser(ctx context.Context, actor policy.Actor, in UserInput) (User, error) {
	if !loginRE.MatchString(in.Login) {
		return User{}, ErrLogin
	}
	if err := checkNameMobile(in.Name, in.Mobile); err != nil {
		return User{}, err
	}
	if err := ValidateRoles(in.Roles); err != nil {
		return User{}, err
	}
	if err := CheckPasswordPolicy(in.Password, in.Login); err != nil {
		return User{}, err
	}
	hash := HashPassword(in.Password)
	var id int64
	err := s.db.InTx(ctx, func(tx *store.Tx) error {
		var status string
		if err := tx.QueryRow(ctx, "SELECT status FROM departments WHERE id = ?", in.DeptID).Scan(&status); err != nil || status != StatusActive {
			if err == nil || errors.Is(err, sql.ErrNoRows) {
				return ErrUserDept
			}
			return err
		}
		now := s.now()
		err := tx.QueryRow(ctx, `INSERT INTO users (login, name, mobile, dept_id, password_hash, must_change_password, status, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`, in.Login, in.Name, in.Mobile, in.DeptID, hash, true, StatusActive, now, now).Scan(&id)
		if store.IsUniqueViolation(err) {
			return ErrLoginTaken
		} else if err != nil {
			return err
		}
		return setRoles(ctx, tx, id, in.Roles)
	})
	if err != nil {
		return User{}, fmt.Errorf("create user %s: %w", in.Login, err)
	}
	u, err := s.User(ctx, id)
	if err != nil {
		return User{}, err
	}
	return u, s.record(ctx, actor, "user.create", "user", itoa(id), audit.ResultOK, map[string]any{
		"login": u.Login, "name": u.Name, "dept_id": u.DeptID, "roles": u.Roles, "mobile": MaskMobile(u.Mobile)})
}

func setRoles(ctx context.Context, tx *store.Tx, id int64, roles []policy.Role) error {
	if _, err := tx.Exec(ctx, "DELETE FROM user_roles WHERE user_id = ?", id); err != nil {
		return err
	}
	for _, r := range roles {
		if _, err := tx.Exec(ctx, "INSERT INTO user_roles (user_id, role) VALUES (?, ?)", id, string(r)); err != nil {
			return err
		}
	}
	return nil
}

// UpdateUser changes a user's name, mobile, department, roles or status.
// Disabling a user ends their sessions.
func (s *Service) UpdateUser(ctx context.Context, actor policy.Actor, id int64, in UserUpdate) (User, error) {
	before, err := s.User(ctx, id)
	if err != nil {
		return User{}, err
	}
	in.Name = strings.TrimSpace(in.Name)
	in.Mobile = strings.TrimSpace(in.Mobile)
	in.Roles = normRoles(in.Roles)
	if in.Status == "" {
		in.Status = before.Status
	}
	// The actor must be allowed on the user as they are and as they will be.
	for _, t := range []policy.Target{
		{DeptID: before.DeptID, AdminUser: before.HasAdminRole()},
		{DeptID: in.DeptID, AdminUser: hasAdmin(in.Roles)},
	} {
		if err := s.authorize(ctx, actor, policy.UserUpdate, t, "user", itoa(id)); err != nil {
			return User{}, err
		}
	}
	if !slices.Equal(before.Roles, in.Roles) && (hasAdmin(in.Roles) || before.HasAdminRole()) {
		if err := s.authorize(ctx, actor, policy.UserAssignAdmin, policy.Target{DeptID: in.DeptID, AdminUser: true}, "user", itoa(id)); err != nil {
			return User{}, err
		}
	}
	if err := checkNameMobile(in.Name, in.Mobile); err != nil {
		return User{}, err
	}
	if err := ValidateRoles(in.Roles); err != nil {
		return User{}, err
	}
	if in.Status != StatusActive && in.Status != StatusDisabled {
		return User{}, ErrUserStatus
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		var status string
		if err := tx.QueryRow(ctx, "SELECT status FROM departments WHERE id = ?", in.DeptID).Scan(&status); err != nil || (status != StatusActive && in.DeptID != before.DeptID) {
			if err == nil || errors.Is(err, sql.ErrNoRows) {
				return ErrUserDept
			}
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE users SET name = ?, mobile = ?, dept_id = ?, status = ?, updated_at = ? WHERE id = ?",
			in.Name, in.Mobile, in.DeptID, in.Status, s.now(), id); err != nil {
			return err
		}
		if err := setRoles(ctx, tx, id, in.Roles); err != nil {
			return err
		}
		if in.Status == StatusDisabled {
			return revokeSessions(ctx, tx, id, s.now())
		}
		return nil
	})
	if err != nil {
		return User{}, fmt.Errorf("update user %d: %w", id, err)
	}
	u, err := s.User(ctx, id)
	if err != nil {
		return User{}, err
	}
	return u, s.record(ctx, actor, "user.update", "user", itoa(id), audit.ResultOK, diff(
		"name", before.Name, u.Name, "mobile", MaskMobile(before.Mobile), MaskMobile(u.Mobile), "dept_id", before.DeptID, u.DeptID,
		"roles", before.Roles, u.Roles, "status", before.Status, u.Status))
}

// ResetPassword sets a new temporary password that must be changed at the
// next login, and ends the user's sessions.
func (s *Service) ResetPassword(ctx context.Context, actor policy.Actor, id int64, password string) error {
	u, err := s.User(ctx, id)
	if err != nil {
		return err
	}
	if err := s.authorize(ctx, actor, policy.UserResetPassword, policy.Target{DeptID: u.DeptID, AdminUser: u.HasAdminRole()}, "user", itoa(id)); err != nil {
		return err
	}
	if err := CheckPasswordPolicy(password, u.Login); err != nil {
		return err
	}
	hash := HashPassword(password)
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE users SET password_hash = ?, must_change_password = ?, failed_logins = 0, locked_until = NULL, updated_at = ? WHERE id = ?",
			hash, true, s.now(), id); err != nil {
			return err
		}
		return revokeSessions(ctx, tx, id, s.now())
	})
	if err != nil {
		return fmt.Errorf("reset password of user %d: %w", id, err)
	}
	return s.record(ctx, actor, "user.reset_password", "user", itoa(id), audit.ResultOK, map[string]any{"login": u.Login})
}

// Unlock clears a lockout.
func (s *Service) Unlock(ctx context.Context, actor policy.Actor, id int64) error {
	u, err := s.User(ctx, id)
	if err != nil {
		return err
	}
	if err := s.authorize(ctx, actor, policy.UserUnlock, policy.Target{DeptID: u.DeptID, AdminUser: u.HasAdminRole()}, "user", itoa(id)); err != nil {
		return err
	}
	if _, err := s.db.Exec(ctx, "UPDATE users SET failed_logins = 0, locked_until = NULL, updated_at = ? WHERE id = ?", s.now(), id); err != nil {
		return err
	}
	return s.record(ctx, actor, "user.unlock", "user", itoa(id), audit.ResultOK, map[string]any{"login": u.Login})
}

// ResetTOTP removes a user's two-factor secret (a lost phone); the user
// enrols again at the next login.
func (s *Service) ResetTOTP(ctx context.Context, actor policy.Actor, id int64) error {
	u, err := s.User(ctx, id)
	if err != nil {
		return err
	}
	if err := s.authorize(ctx, actor, policy.UserResetTOTP, policy.Target{DeptID: u.DeptID, AdminUser: u.HasAdminRole()}, "user", itoa(id)); err != nil {
		return err
	}
	err = s.db.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE users SET totp_secret = '', totp_enabled = ?, updated_at = ? WHERE id = ?", false, s.now(), id); err != nil {
			return err
		}
		return revokeSessions(ctx, tx, id, s.now())
	})
	if err != nil {
		return err
	}
	return s.record(ctx, actor, "user.reset_totp", "user", itoa(id), audit.ResultOK, map[string]any{"login": u.Login})
}

// RevokeSessions ends every session of a user.
func (s *Service) RevokeSessions(ctx context.Context, actor policy.Actor, id int64) error {
	u, err := s.User(ctx, id)
	if err != nil {
		return err
	}
	if err := s.authorize(ctx, actor, policy.UserRevokeSessions, policy.Target{DeptID: u.DeptID, AdminUser: u.HasAdminRole()}, "user", itoa(id)); err != nil {
		return err
	}
	if err := s.db.InTx(ctx, func(tx *store.Tx) error { return revokeSessions(ctx, tx, id, s.now()) }); err != nil {
		return err
	}
	return s.record(ctx, actor, "user.revoke_sessions", "user", itoa(id), audit.ResultOK, map[string]any{"login": u.Login})
}

func revokeSessions(ctx context.Context, tx *store.Tx, userID int64, now time.Time) error {
	_, err := tx.Exec(ctx, "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL", now, userID)
	return err
}

const userCols = `id, login, name, mobile, dept_id, password_hash, must_change_password, failed_logins, locked_until,
	totp_secret, totp_enabled, totp_last_step, status, created_at, updated_at`

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	var locked sql.NullTime
	err := row.Scan(&u.ID, &u.Login, &u.Name, &u.Mobile, &u.DeptID, &u.passwordHash, &u.MustChangePassword, &u.failedLogins,
		&locked, &u.totpSecret, &u.TOTPEnabled, &u.totpLastStep, &u.Status, &u.CreatedAt, &u.UpdatedAt)
	if locked.Valid {
		u.LockedUntil = locked.Time
	}
	return u, err
}

func (s *Service) loadRoles(ctx context.Context, users []User) error {
	if len(users) == 0 {
		return nil
	}
	idx := map[int64]int{}
	args := make([]any, len(users))
	for i, u := range users {
		idx[u.ID] = i
		args[i] = u.ID
		users[i].Roles = []policy.Role{}
	}
	rows, err := s.db.Query(ctx, "SELECT user_id, role FROM user_roles WHERE user_id IN ("+store.Placeholders(len(args))+") ORDER BY role", args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var r string
		if err := rows.Scan(&id, &r); err != nil {
			return err
		}
		users[idx[id]].Roles = append(users[idx[id]].Roles, policy.Role(r))
	}
	return rows.Err()
}

// User returns one user with roles.
func (s *Service) User(ctx context.Context, id int64) (User, error) {
	return s.userWhere(ctx, "id = ?", id)
}

// UserByLogin returns one user with roles.
func (s *Service) UserByLogin(ctx context.Context, login string) (User, error) {
	return s.userWhere(ctx, "login = ?", strings.TrimSpace(login))
}

func (s *Service) userWhere(ctx context.Context, where string, arg any) (User, error) {
	u, err := scanUser(s.db.QueryRow(ctx, "SELECT "+userCols+" FROM users WHERE "+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return u, apperr.ErrNotFound
	} else if err != nil {
		return u, err
	}
	us := []User{u}
	err = s.loadRoles(ctx, us)
	return us[0], err
}

// UserFilter narrows a user list.
type UserFilter struct {
	DeptID int64
	Query  string // part of login or name
	Limit  int
}

// Users lists the users actor may see, by department then login.
func (s *Service) Users(ctx context.Context, actor policy.Actor, f UserFilter) ([]User, error) {
	if !policy.Allowed(actor, policy.UserView, policy.Target{}) {
		// Not allowed platform-wide: scoped to the actor's own department.
		if !policy.Allowed(actor, policy.UserView, policy.Target{DeptID: actor.DeptID}) {
			return nil, s.authorize(ctx, actor, policy.UserView, policy.Target{}, "user", "")
		}
		f.DeptID = actor.DeptID
	}
	q := "SELECT " + userCols + " FROM users"
	var conds []string
	var args []any
	if f.DeptID != 0 {
		conds = append(conds, "dept_id = ?")
		args = append(args, f.DeptID)
	}
	if f.Query != "" {
		like := "%" + store.LikeEscape(f.Query) + "%"
		conds = append(conds, `(login LIKE ? ESCAPE '\' OR name LIKE ? ESCAPE '\')`)
		args = append(args, like, like)
	}
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 500
	}
	q += fmt.Sprintf(" ORDER BY dept_id, login LIMIT %d", f.Limit)
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, s.loadRoles(ctx, out)
}

// ViewUser returns a user if actor may see them.
func (s *Service) ViewUser(ctx context.Context, actor policy.Actor, id int64) (User, error) {
	u, err := s.User(ctx, id)
	if err != nil {
		return u, err
	}
	if actor.UserID == id {
		return u, nil
	}
	if err := s.authorize(ctx, actor, policy.UserView, policy.Target{DeptID: u.DeptID}, "user", itoa(id)); err != nil {
		return User{}, err
	}
	return u, nil
}

// BootstrapInput creates the first administrator from the command line.
type BootstrapInput struct {
	User UserInput
	// Department is created when no department with its credit code exists.
	Department DepartmentInput
}

// Bootstrap creates a user without an acting user: it is how the first
// platform administrator comes to exist (`govshare admin create`). It is
// audited as a system action.
func (s *Service) Bootstrap(ctx context.Context, in BootstrapInput) (User, error) {
	system := policy.Actor{Login: "cli"}
	d, err := s.DepartmentByCode(ctx, in.Department.CreditCode)
	if errors.Is(err, apperr.ErrNotFound) {
		d, err = s.createDepartment(ctx, system, in.Department)
	}
	if err != nil {
		return User{}, err
	}
	in.User.DeptID = d.ID
	in.User.Roles = normRoles(in.User.Roles)
	return s.createUser(ctx, system, in.User)
}

// SeedDepartment and SeedUser create demo data without an acting user.
func (s *Service) SeedDepartment(ctx context.Context, in DepartmentInput) (Department, error) {
	return s.createDepartment(ctx, policy.Actor{Login: "demo"}, in)
}

// SeedUser creates a demo user; mustChange false lets demo users log straight in.
func (s *Service) SeedUser(ctx context.Context, in UserInput, mustChange bool, totpSecret string) (User, error) {
	in.Roles = normRoles(in.Roles)
	u, err := s.createUser(ctx, policy.Actor{Login: "demo"}, in)
	if err != nil {
		return u, err
	}
	sealed := ""
	if totpSecret != "" {
		sealed = s.seal.Seal([]byte(totpSecret))
	}
	_, err = s.db.Exec(ctx, "UPDATE users SET must_change_password = ?, totp_secret = ?, totp_enabled = ? WHERE id = ?",
		mustChange, sealed, totpSecret != "", u.ID)
	if err != nil {
		return u, err
	}
	return s.User(ctx, u.ID)
}

// Contact is how a department's data administrator is shown to other
// departments: name and login, no personal numbers.
type Contact struct {
	Name  string `json:"name"`
	Login string `json:"login"`
}

// DataAdministrators lists the registered data administrators (部门数据管理员)
// of a department, the contacts for its catalog entries.
func (s *Service) DataAdministrators(ctx context.Context, deptID int64) ([]Contact, error) {
	rows, err := s.db.Query(ctx, `SELECT u.name, u.login FROM users u JOIN user_roles r ON r.user_id = u.id
		WHERE u.dept_id = ? AND r.role = ? AND u.status = ? ORDER BY u.login`, deptID, string(policy.DeptAdmin), StatusActive)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Contact
	for rows.Next() {
		var c Contact
		if err := rows.Scan(&c.Name, &c.Login); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
