package catalog_test

import (
	"context"
	"errors"
	"testing"

	"govshare/internal/apperr"
	"govshare/internal/catalog"
	"govshare/internal/store"
	"govshare/internal/storetest"
)

func TestRatingsComeFromOtherDepartments(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db, catalog.DefaultConfig())
		ctx := context.Background()
		draft, _ := f.svc.CreateEntry(ctx, f.police, household())
		err := f.svc.Rate(ctx, f.admin, draft.ID, 4, "")
		code(t, err, "catalog.not_published")
		e := publish(t, f, household())
		code(t, f.svc.Rate(ctx, f.viewer, e.ID, 5, ""), "catalog.rating_own")
		code(t, f.svc.Rate(ctx, f.civil, e.ID, 6, ""), "catalog.rating_stars_invalid")
		if err := f.svc.Rate(ctx, f.civil, e.ID, 3, "字段齐全"); err != nil {
			t.Fatal(err)
		}
		if err := f.svc.Rate(ctx, f.civil, e.ID, 5, "更新及时"); err != nil { // replaces
			t.Fatal(err)
		}
		if err := f.svc.Rate(ctx, f.admin, e.ID, 4, ""); err != nil {
			t.Fatal(err)
		}
		sum, err := f.svc.Ratings(ctx, e.ID)
		if err != nil || sum.Count != 2 || sum.Average != 4.5 {
			t.Fatalf("ratings: %+v %v", sum, err)
		}
	})
}

func TestDemandIsRoutedAndAnswered(t *testing.T) {
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		f := setup(t, db, catalog.DefaultConfig())
		ctx := context.Background()
		_, err := f.svc.PostDemand(ctx, f.civil, catalog.DemandInput{Title: "流动人口居住信息"})
		code(t, err, "catalog.demand_purpose_required")
		d, err := f.svc.PostDemand(ctx, f.civil, catalog.DemandInput{Title: "流动人口居住信息", Purpose: "社会救助对象核查", Description: "需要居住地址"})
		if err != nil || d.State != "open" {
			t.Fatalf("post: %+v %v", d, err)
		}
		if _, err := f.svc.RouteDemand(ctx, f.civil, d.ID, f.police.DeptID); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("consumer routes: %v", err)
		}
		if d, err = f.svc.RouteDemand(ctx, f.admin, d.ID, f.police.DeptID); err != nil || d.State != "routed" {
			t.Fatalf("route: %v", err)
		}
		// Only the routed department answers, with an entry of its own or a reason.
		if _, err := f.svc.AnswerDemand(ctx, f.civil, d.ID, 0, "无"); !errors.Is(err, apperr.ErrDenied) {
			t.Fatalf("other department answers: %v", err)
		}
		_, err = f.svc.AnswerDemand(ctx, f.police, d.ID, 0, " ")
		code(t, err, "catalog.demand_answer_required")
		e := publish(t, f, household())
		if d, err = f.svc.AnswerDemand(ctx, f.police, d.ID, e.ID, "已登记居住证信息"); err != nil || d.State != "answered" || d.EntryID != e.ID {
			t.Fatalf("answer: %+v %v", d, err)
		}
		list, _ := f.svc.Demands(ctx, catalog.DemandFilter{Query: "流动"})
		if len(list) != 1 {
			t.Fatalf("search demands: %v", list)
		}
	})
}

func TestRelatedEntriesShareKeywordsOrClass(t *testing.T) {
	f := setup(t, storetest.OpenSQLite(t), catalog.DefaultConfig())
	ctx := context.Background()
	a := publish(t, f, household())
	c := household()
	c.Name, c.Keywords = "居住证登记信息", []string{"人口"}
	b := publish(t, f, c)
	c = household()
	c.Name, c.ClassCode, c.Keywords = "企业登记信息", "102", []string{"企业"}
	publish(t, f, c)
	rel, err := f.svc.Related(ctx, a, 5)
	if err != nil || len(rel) != 1 || rel[0].ID != b.ID {
		t.Fatalf("related: %+v %v", rel, err)
	}
}
