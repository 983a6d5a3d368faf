package web

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"govshare/internal/identity"
	"govshare/internal/todo"
)

func (s *Server) todoRoutes() {
	s.mux.HandleFunc("GET /todos", s.withSession(identity.StageReady, s.todosPage))
}

func (s *Server) todosPage(w http.ResponseWriter, r *http.Request, c *current) {
	items, err := s.Todos.List(r.Context(), c.user.Actor())
	if err != nil {
		s.errorPage(w, r, &c.user, err)
		return
	}
	s.render(w, r, http.StatusOK, "todos", &page{Title: T(langOf(r), "nav.todos"), User: &c.user, Active: "/todos", Data: items})
}

func (s *Server) todoAPI(api huma.API) {
	huma.Register(api, op("list-todos", http.MethodGet, "/api/v1/todos", "待办 To-dos", "我的待办 / what waits on me"),
		func(ctx context.Context, _ *struct{}) (*struct{ Body []todo.Item }, error) {
			items, err := s.Todos.List(ctx, principalFrom(ctx).actor())
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			if items == nil {
				items = []todo.Item{}
			}
			return &struct{ Body []todo.Item }{Body: items}, nil
		})
}
