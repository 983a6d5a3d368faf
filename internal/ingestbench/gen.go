package ingestbench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"govshare/internal/checkdigit"
)

// The synthetic people: made-up citizen IDs with correct check characters
// (checkdigit.SyntheticCitizenID's scheme), birth dates and sexes that
// agree with them, names drawn from common characters, made-up credit
// codes of employers. Nothing is real data.

// regions are the region codes of the fixture loaded before the run; the
// retired 350182 (长乐市) is accepted, as quality rules accept retired
// codes.
var regions = []struct{ code, name, status string }{
	{"350000", "福建省", "current"}, {"350100", "福州市", "current"},
	{"350102", "鼓楼区", "current"}, {"350103", "台江区", "current"}, {"350104", "仓山区", "current"},
	{"350105", "马尾区", "current"}, {"350111", "晋安区", "current"}, {"350112", "长乐区", "current"},
	{"350121", "闽侯县", "current"}, {"350182", "长乐市", "retired"},
}

// birthRegions are the regions people are born and registered in.
var birthRegions = []string{"350102", "350103", "350104", "350105", "350111", "350112", "350121", "350182"}

var (
	surnames = []rune("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蔡蒋余杜叶程魏苏吕丁任沈姚卢")
	given    = []rune("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力成云鹏宇浩然思雨欣怡子轩梓涵诗琪俊杰")
)

// birthFrom and birthDays bound birth dates: 1930-01-01 and the 29,220
// days after it (to 2009).
var birthFrom = time.Date(1930, 1, 1, 0, 0, 0, 0, time.UTC)

const birthDays = 29220

// BadKinds are the ways a generated row is made to fail, one kind per bad
// row in turn. Every bad row still fits the plain table's column types, so
// the COPY baseline loads the same file.
var BadKinds = []string{
	"citizen_id/citizen_id",     // wrong check character
	"sex/code",                  // 3 is not a GB/T 2261.1 code
	"birth_date/id_birth",       // a day off the ID's birth date
	"region_code/region",        // not in the region table
	"monthly_income/range",      // negative
	"registered_on/date_range",  // in the future
	"postcode/regex",            // starts with 0
	"name/length",               // longer than 10 characters
	"employer_code/credit_code", // wrong check character
	"citizen_id/duplicate_key",  // the key of an earlier row
	"phone/unique",              // the phone of an earlier row
	"phone/phone",               // not a phone number
	"name/required",             // missing
}

// person is one generated row's parts.
type person struct {
	id, name, sex, birth, region, employer, phone, income, registered, postcode string
}

type generator struct {
	badEvery  int
	mult, mod int64
	employers []string
	dates     []string // birth dates, YYYY-MM-DD, by day offset
	regDates  []string
	buf       []byte
}

func newGenerator(badEvery int) *generator {
	g := &generator{badEvery: badEvery, mod: int64(len(birthRegions)) * birthDays * 1000}
	// A multiplier prime to mod spreads row numbers over all IDs
	// without repeating one: i → i·mult mod mod is one to one.
	g.mult = 2654435761 % g.mod
	for gcd(g.mult, g.mod) != 1 {
		g.mult++
	}
	for i := range 5000 {
		g.employers = append(g.employers, checkdigit.SyntheticCreditCode("350100", i+1))
	}
	for d := range birthDays {
		g.dates = append(g.dates, birthFrom.AddDate(0, 0, d).Format("2006-01-02"))
	}
	from := time.Date(1985, 1, 1, 0, 0, 0, 0, time.UTC)
	for d := range 14600 {
		g.regDates = append(g.regDates, from.AddDate(0, 0, d).Format("2006-01-02"))
	}
	return g
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// good is row i (from 0) as a valid record.
func (g *generator) good(i int) person {
	x := int64(i) * g.mult % g.mod
	seq := int(x % 1000)
	day := int(x / 1000 % birthDays)
	region := birthRegions[x/1000/birthDays]
	birth := g.dates[day]
	var id [18]byte
	copy(id[:6], region)
	copy(id[6:10], birth[0:4])
	copy(id[10:12], birth[5:7])
	copy(id[12:14], birth[8:10])
	id[14], id[15], id[16] = byte('0'+seq/100), byte('0'+seq/10%10), byte('0'+seq%10)
	id[17] = checkdigit.CitizenIDCheckChar(string(id[:17]))
	sex := "2"
	if seq%2 == 1 {
		sex = "1"
	}
	h := uint64(i)*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019
	h ^= h >> 29
	name := string(surnames[h%uint64(len(surnames))]) + string(given[(h>>8)%uint64(len(given))])
	if h>>16%3 != 0 {
		name += string(given[(h>>24)%uint64(len(given))])
	}
	phone := 13000000000 + (int64(i)*7919+12345)%1000000000
	return person{
		id: string(id[:]), name: name, sex: sex, birth: birth, region: region,
		employer:   g.employers[(h>>32)%uint64(len(g.employers))],
		phone:      strconv.FormatInt(phone, 10),
		income:     strconv.FormatUint(2000+(h>>40)%30000, 10) + "." + strconv.FormatUint((h>>20)%100/10, 10) + "0",
		registered: g.regDates[(h>>12)%uint64(len(g.regDates))],
		postcode:   "35" + fmt.Sprintf("%04d", (h>>44)%10000),
	}
}

// row is row i as written: a good record, or every badEvery-th row a bad
// one of the next kind. kind is -1 for a good row.
func (g *generator) row(i int) (p person, kind int) {
	p = g.good(i)
	if g.badEvery <= 0 || i%g.badEvery != g.badEvery-1 {
		return p, -1
	}
	kind = (i / g.badEvery) % len(BadKinds)
	switch BadKinds[kind] {
	case "citizen_id/citizen_id":
		c := p.id[17]
		if c == '0' {
			c = '1'
		} else {
			c = '0'
		}
		p.id = p.id[:17] + string(c)
	case "sex/code":
		p.sex = "3"
	case "birth_date/id_birth":
		t, _ := time.Parse("2006-01-02", p.birth)
		p.birth = t.AddDate(0, 0, 1).Format("2006-01-02")
	case "region_code/region":
		p.region = "350199"
	case "monthly_income/range":
		p.income = "-" + p.income
	case "registered_on/date_range":
		p.registered = "2999-01-01"
	case "postcode/regex":
		p.postcode = "0" + p.postcode[1:]
	case "name/length":
		p.name += "某某某某某某某某某"
	case "employer_code/credit_code":
		c := p.employer[17]
		if c == '0' {
			c = '1'
		} else {
			c = '0'
		}
		p.employer = p.employer[:17] + string(c)
	case "citizen_id/duplicate_key":
		// An earlier person again, with this row's phone: only the
		// key repeats.
		phone := p.phone
		p = g.good(i - g.badEvery/2)
		p.phone = phone
	case "phone/unique":
		p.phone = g.good(i - g.badEvery/2).phone
	case "phone/phone":
		p.phone = "12345"
	case "name/required":
		p.name = ""
	}
	return p, kind
}

// header is the file's first line: the items' machine names.
const header = "citizen_id,name,sex,birth_date,region_code,employer_code,phone,monthly_income,registered_on,postcode\n"

func (g *generator) write(w io.Writer, p person) error {
	b := g.buf[:0]
	for j, v := range []string{p.id, p.name, p.sex, p.birth, p.region, p.employer, p.phone, p.income, p.registered, p.postcode} {
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, v...)
	}
	b = append(b, '\n')
	g.buf = b
	_, err := w.Write(b)
	return err
}

// generated is what writeFile made.
type generated struct {
	bytes int64
	bad   int            // rows made to fail
	kinds map[string]int // bad rows by kind
}

// writeFile writes n rows to path, telling progress about every tenth.
func writeFile(path string, n, badEvery int, progress func(done int)) (generated, error) {
	f, err := os.Create(path)
	if err != nil {
		return generated{}, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	g := newGenerator(badEvery)
	out := generated{kinds: map[string]int{}}
	if _, err := w.WriteString(header); err != nil {
		return out, err
	}
	step := max(n/10, 1)
	for i := range n {
		p, kind := g.row(i)
		if kind >= 0 {
			out.bad++
			out.kinds[BadKinds[kind]]++
		}
		if err := g.write(w, p); err != nil {
			return out, err
		}
		if progress != nil && (i+1)%step == 0 {
			progress(i + 1)
		}
	}
	if err := w.Flush(); err != nil {
		return out, err
	}
	st, err := f.Stat()
	if err != nil {
		return out, err
	}
	out.bytes = st.Size()
	return out, f.Close()
}
