package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// methods are the HTTP methods an operation may have, in display order.
var methods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

// ParseOperations reads operations written one per line, as the
// registration form takes them: "GET /persons/{id} 按身份证号查询人口信息".
// Blank lines and lines starting with # are skipped.
func ParseOperations(text string) ([]Operation, error) {
	var out []Operation
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, ErrOperation.OnRow(i + 1)
		}
		out = append(out, Operation{Method: f[0], Path: f[1], Summary: strings.Join(f[2:], " ")})
	}
	return out, nil
}

// FormatOperations writes operations the way ParseOperations reads them.
func FormatOperations(ops []Operation) string {
	var b strings.Builder
	for _, o := range ops {
		b.WriteString(o.String())
		if o.Summary != "" {
			b.WriteString(" " + o.Summary)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// normalizeOperations checks and tidies a service's operations.
func normalizeOperations(ops []Operation) ([]Operation, error) {
	if len(ops) == 0 {
		return nil, ErrOperationsNone
	}
	if len(ops) > maxOperations {
		return nil, ErrOperationsMany
	}
	seen := map[string]bool{}
	out := make([]Operation, 0, len(ops))
	for i, o := range ops {
		field := fmt.Sprintf("operations[%d]", i)
		o.Method = strings.ToUpper(strings.TrimSpace(o.Method))
		o.Path = strings.TrimSpace(o.Path)
		o.Summary = strings.TrimSpace(o.Summary)
		if utf8.RuneCountInString(o.Summary) > 200 {
			o.Summary = string([]rune(o.Summary)[:200])
		}
		if !slices.Contains(methods, o.Method) || !validPattern(o.Path) {
			return nil, ErrOperation.OnField(field)
		}
		// Two patterns that differ only in their parameters' names match
		// the same calls.
		shape := o.Method + " " + paramRE.ReplaceAllString(o.Path, "{}")
		if seen[shape] {
			return nil, ErrOperationDup.OnField(field)
		}
		seen[shape] = true
		out = append(out, o)
	}
	return out, nil
}

var (
	paramRE   = regexp.MustCompile(`\{[A-Za-z0-9_.\-]+\}`)
	literalRE = regexp.MustCompile(`^[\p{L}\p{N}\-._~!$&'()*+,;=:@%]*$`)
)

// validPattern accepts "/persons/{id}", "/reports/{year}.json" and
// "/": segments of URL path characters and {name} parameters.
func validPattern(p string) bool {
	if !strings.HasPrefix(p, "/") || len(p) > 500 {
		return false
	}
	segs := strings.Split(p[1:], "/")
	for i, seg := range segs {
		if seg == "" {
			if i == len(segs)-1 {
				continue // a trailing slash
			}
			return false
		}
		if seg == "." || seg == ".." {
			return false
		}
		lit := paramRE.ReplaceAllString(seg, "")
		if !literalRE.MatchString(lit) {
			return false
		}
		if _, err := url.PathUnescape(lit); err != nil {
			return false
		}
	}
	return true
}

// route is an operation ready to match paths.
type route struct {
	op       Operation
	re       *regexp.Regexp
	literals int // characters outside parameters: the more, the more specific
}

func compileRoutes(ops []Operation) []route {
	out := make([]route, 0, len(ops))
	for _, o := range ops {
		var b strings.Builder
		b.WriteString("^")
		rest := o.Path
		for {
			loc := paramRE.FindStringIndex(rest)
			if loc == nil {
				break
			}
			lit, _ := url.PathUnescape(rest[:loc[0]])
			b.WriteString(regexp.QuoteMeta(lit) + "[^/]+")
			rest = rest[loc[1]:]
		}
		lit, _ := url.PathUnescape(rest)
		b.WriteString(regexp.QuoteMeta(lit) + "$")
		out = append(out, route{op: o, re: regexp.MustCompile(b.String()), literals: len(paramRE.ReplaceAllString(o.Path, ""))})
	}
	return out
}

// match finds the operation a call asks for: its method and its path
// below the service, as sent (escaped). A path that could climb out of
// the service (a "." or ".." segment, an escaped "/" or "\") matches
// nothing, so the provider never sees it.
func match(routes []route, method, escapedPath string) (Operation, bool) {
	if !strings.HasPrefix(escapedPath, "/") {
		return Operation{}, false
	}
	segs := strings.Split(escapedPath[1:], "/")
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil || u == "." || u == ".." || strings.ContainsAny(u, "/\\") || (u == "" && i < len(segs)-1) {
			return Operation{}, false
		}
		segs[i] = u
	}
	path := "/" + strings.Join(segs, "/")
	best, found := route{}, false
	for _, r := range routes {
		if r.op.Method == method && r.re.MatchString(path) && (!found || r.literals > best.literals) {
			best, found = r, true
		}
	}
	return best.op, found
}

// operationsFromOpenAPI derives the operations from the paths of an
// OpenAPI 3 (or Swagger 2.0) document in JSON or YAML (block or flow
// style; JSON is YAML too). Paths are taken as relative to the base URL
// the provider registers.
func operationsFromOpenAPI(doc string) ([]Operation, error) {
	doc = strings.TrimPrefix(strings.TrimSpace(doc), "\ufeff")
	var d struct {
		OpenAPI string                          `yaml:"openapi"`
		Swagger string                          `yaml:"swagger"`
		Paths   map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, ErrOpenAPI.With("OpenAPI 文档结构不对："+te.Error(), "the OpenAPI document is not shaped as one: "+te.Error())
		}
		return nil, ErrOpenAPI.With("OpenAPI 文档不是合法的 JSON 或 YAML："+err.Error(), "the OpenAPI document is neither valid JSON nor YAML: "+err.Error())
	}
	if d.OpenAPI == "" && d.Swagger == "" || d.Paths == nil {
		return nil, ErrOpenAPI
	}
	var ops []Operation
	for path, item := range d.Paths {
		if !strings.HasPrefix(path, "/") {
			continue // x- extensions
		}
		for key, node := range item {
			m := strings.ToUpper(key)
			if !slices.Contains(methods, m) {
				continue // parameters, summary, servers …
			}
			var o struct {
				Summary     string `yaml:"summary"`
				OperationID string `yaml:"operationId"`
			}
			_ = node.Decode(&o)
			ops = append(ops, Operation{Method: m, Path: path, Summary: firstNonEmpty(o.Summary, o.OperationID)})
		}
	}
	if len(ops) == 0 {
		return nil, ErrOpenAPI.With("OpenAPI 文档的 paths 中没有操作", "the OpenAPI document's paths hold no operations")
	}
	slices.SortStableFunc(ops, func(a, b Operation) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return slices.Index(methods, a.Method) - slices.Index(methods, b.Method)
	})
	return ops, nil
}

func firstNonEmpty(xs ...string) string {
	for _, x := range xs {
		if x != "" {
			return x
		}
	}
	return ""
}
