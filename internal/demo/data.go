package demo

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"strings"
	"time"

	"govshare/internal/checkdigit"
	"govshare/internal/policy"
	"govshare/internal/resource"
	"govshare/internal/server"
)

//go:embed regions.csv
var regionsCSV []byte

// loadData loads the demo city's region table and backs two published
// entries with synthetic data: people of 市公安局's household register
// (with a few records that fail their rules, waiting in the quarantine)
// and enterprises of 市市场监督管理局's register.
func loadData(ctx context.Context, p *server.Platform, entries map[string]int64) error {
	root := policy.Actor{Login: "demo", Roles: []policy.Role{policy.PlatformAdmin}}
	if _, err := p.RefData.ImportRegions(ctx, root, bytes.NewReader(regionsCSV), "demo"); err != nil {
		return fmt.Errorf("demo regions: %w", err)
	}
	load := func(dept, entry, csv string) error {
		u, err := p.Identity.UserByLogin(ctx, dept+".admin")
		if err != nil {
			return err
		}
		r, err := p.Resources.Mount(ctx, u.Actor(), entries[entry])
		if err != nil {
			return fmt.Errorf("demo mount %s: %w", entry, err)
		}
		rows, err := resource.CSVRows(strings.NewReader(csv))
		if err != nil {
			return err
		}
		_, err = p.Resources.Submit(ctx, u.Actor(), r.Code, resource.SubmitOptions{Source: resource.SourceUpload, Detail: "演示数据.csv", MaxErrors: -1}, rows)
		return err
	}
	districts := []string{"350102", "350103", "350104", "350105", "350111"}
	stations := map[string]string{"350102": "鼓楼派出所", "350103": "台江派出所", "350104": "仓山派出所", "350105": "马尾派出所", "350111": "晋安派出所"}
	streets := []string{"五四路", "工业路", "上海路", "江滨大道", "福新路"}
	var b strings.Builder
	b.WriteString("citizen_id,name,sex,birth_date,native_place,ethnicity,household_address,police_station,status\n")
	for i := range 60 {
		region := districts[i%len(districts)]
		birth := time.Date(1950+i%50, time.Month(1+i%12), 1+i%28, 0, 0, 0, 0, time.UTC)
		id := checkdigit.SyntheticCitizenID(region, birth, i+1)
		sex := "2"
		if male, _ := checkdigit.CitizenIDMale(id); male {
			sex = "1"
		}
		fmt.Fprintf(&b, "%s,%s,%s,%s,福建福州,01,福建省福州市%s%s%d号,%s,10\n", id, personName(i), sex, birth.Format("2006-01-02"),
			districtName(region), streets[i%len(streets)], 10+i, stations[region])
	}
	// Three records a clerk got wrong: a mistyped check character, no
	// name, an unknown sex code. They wait in the quarantine.
	bad := checkdigit.SyntheticCitizenID("350102", time.Date(1985, 5, 5, 0, 0, 0, 0, time.UTC), 901)
	fmt.Fprintf(&b, "%s%c,%s,1,1985-05-05,福建福州,01,福建省福州市鼓楼区五四路1号,鼓楼派出所,10\n", bad[:17], "0123456789X"[(strings.IndexByte("0123456789X", bad[17])+1)%11], personName(61))
	fmt.Fprintf(&b, "%s,,1,1986-06-06,福建福州,01,福建省福州市台江区工业路2号,台江派出所,10\n", checkdigit.SyntheticCitizenID("350103", time.Date(1986, 6, 6, 0, 0, 0, 0, time.UTC), 902))
	fmt.Fprintf(&b, "%s,%s,7,1987-07-07,福建福州,01,福建省福州市仓山区上海路3号,仓山派出所,10\n", checkdigit.SyntheticCitizenID("350104", time.Date(1987, 7, 7, 0, 0, 0, 0, time.UTC), 903), personName(62))
	if err := load("gaj", "户籍登记信息", b.String()); err != nil {
		return err
	}
	b.Reset()
	b.WriteString("credit_code,reg_no,name,legal_rep,region_code,address,type,industry,established_on,authority\n")
	trades := []string{"软件", "茶叶", "建材", "餐饮", "物流", "电子"}
	for i := range 30 {
		region := districts[i%len(districts)]
		fmt.Fprintf(&b, "%s,%d,福州示范%s有限公司%d,%s,%s,福建省福州市%s%s%d号,1100,%02d,20%02d-%02d-15,福州市市场监督管理局\n",
			checkdigit.SyntheticCreditCode(region, 100+i), 350100000000000+i, trades[i%len(trades)], i+1, personName(i+7), region,
			districtName(region), streets[(i+2)%len(streets)], 100+i, 10+i%20, i%20, 1+i%12)
	}
	return load("scj", "企业法人登记信息", b.String())
}

func districtName(code string) string {
	return map[string]string{"350102": "鼓楼区", "350103": "台江区", "350104": "仓山区", "350105": "马尾区", "350111": "晋安区"}[code]
}
