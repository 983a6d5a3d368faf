package demo

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"govshare/internal/catalog"
	"govshare/internal/server"
	"govshare/internal/share"
)

// loadSharing gives the demo city some sharing to look at: 市民政局 has an
// app subscribed to the unconditional enterprise register, and 市人社局
// has an application for household registration waiting on 市公安局. It
// returns the app's credentials for the account list, so a newcomer can
// try `govshare call` at once.
func loadSharing(ctx context.Context, p *server.Platform, entries map[string]int64) (string, error) {
	mzj, err := p.Identity.UserByLogin(ctx, "mzj.admin")
	if err != nil {
		return "", err
	}
	rsj, err := p.Identity.UserByLogin(ctx, "rsj.admin")
	if err != nil {
		return "", err
	}
	app, secret, err := p.Apps.Register(ctx, mzj.Actor(), share.AppInput{Name: "社会救助信息系统", Purpose: "低保、特困供养对象资格审核",
		Contact: "民政局信息科 0591-00000000"})
	if err != nil {
		return "", fmt.Errorf("demo app: %w", err)
	}
	if _, err := p.Share.Apply(ctx, mzj.Actor(), entries["企业法人登记信息"], share.Terms{Methods: []catalog.ShareMethod{catalog.MethodAPI},
		Purpose: "核验救助对象名下企业情况", AppIDs: []int64{app.ID}}); err != nil {
		return "", fmt.Errorf("demo subscription: %w", err)
	}
	if _, err := p.Share.Apply(ctx, rsj.Actor(), entries["户籍登记信息"], share.Terms{Items: []string{"citizen_id", "name", "birth_date"},
		Methods: []catalog.ShareMethod{catalog.MethodVerify}, Purpose: "社会保险待遇资格认证", Basis: "《中华人民共和国社会保险法》",
		ValidUntil: time.Now().AddDate(1, 0, 0)}); err != nil {
		return "", fmt.Errorf("demo application: %w", err)
	}
	ent, _, err := p.Catalog.Published(ctx, entries["企业法人登记信息"])
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("\n演示接入应用 / demo app (市民政局 社会救助信息系统)\n  GOVSHARE_APP_KEY=%s\n  GOVSHARE_APP_SECRET=%s\n"+
		"  试一试 / try: GOVSHARE_APP_SECRET=… go run ./cmd/govshare call --app-key %s --purpose 核验 GET '/api/v1/data/%s?limit=5'\n",
		app.Key, secret, app.Key, url.PathEscape(ent.Code)), nil
}
