package dataservicebench

import (
	"strconv"
	"time"

	"govshare/internal/catalog"
	"govshare/internal/checkdigit"
	"govshare/internal/refdata"
)

// The population: synthetic people, each a pure function of its row
// number, so the load generator picks existing IDs by drawing row numbers
// and the comparison's records are made again without reading the
// table. Citizen IDs have correct check characters and agree with the
// birth date and sex; nothing is real data.

// districts are where people are registered (Fuzhou's districts and
// counties).
var districts = []struct{ code, name string }{
	{"350102", "鼓楼区"}, {"350103", "台江区"}, {"350104", "仓山区"}, {"350105", "马尾区"}, {"350111", "晋安区"},
	{"350112", "长乐区"}, {"350121", "闽侯县"}, {"350122", "连江县"}, {"350123", "罗源县"}, {"350181", "福清市"},
}

// birthFrom and birthDays bound birth dates: 1930-01-01 and the 29,220
// days after it (to 2009-12-31).
var birthFrom = time.Date(1930, 1, 1, 0, 0, 0, 0, time.UTC)

const birthDays = 29220

// MaxRows is the most people the scheme numbers without repeating an ID:
// every district and birth day has 500 sequence numbers of each sex's
// parity.
const MaxRows = 10 * birthDays * 500 // 10 districts

var (
	surnames = []rune("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蔡蒋余杜叶程魏苏吕丁任沈姚卢")
	given    = []rune("伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力成云鹏宇浩然思雨欣怡子轩梓涵诗琪俊")
	roads    = []string{"五四路", "八一七北路", "东街", "杨桥路", "工业路", "湖东路", "福新路", "六一路", "国货路", "江滨大道", "金山大道", "华林路"}
	// minorities are other ethnic group codes (GB/T 3304); one person in
	// eleven belongs to one.
	minorities = []string{"02", "03", "04", "05", "06", "08", "09", "10", "11", "12", "15", "17", "18", "22", "24"}
)

// items are the population entry's data items, in table order: the
// citizen ID is the key and is masked keep(6,4), the name surname, the
// address to its district, the phone keep(3,4); the person number is
// unique (indexed), unmasked, and lets a download ask for a range.
func items() []catalog.DataItem {
	return []catalog.DataItem{
		{Name: "公民身份号码", MachineName: "id_number", DataType: "C", Length: 18, Key: true, Sensitivity: "sensitive", MaskRule: "keep(6,4)", QualityRule: "required;citizen_id"},
		{Name: "姓名", MachineName: "name", DataType: "C", Length: 20, Sensitivity: "sensitive", MaskRule: "surname", QualityRule: "required;length:20"},
		{Name: "性别", MachineName: "sex", DataType: "C", Length: 1, QualityRule: "required;code:" + refdata.Sex + ";id_sex:id_number"},
		{Name: "出生日期", MachineName: "birth_date", DataType: "D", Length: 8, QualityRule: "required;id_birth:id_number"},
		{Name: "民族", MachineName: "ethnicity", DataType: "C", Length: 2, QualityRule: "code:" + refdata.Ethnicity},
		{Name: "户籍行政区划", MachineName: "region_code", DataType: "C", Length: 6, QualityRule: "required"},
		{Name: "户籍地址", MachineName: "address", DataType: "C", Length: 100, Sensitivity: "sensitive", MaskRule: "district"},
		{Name: "联系电话", MachineName: "phone", DataType: "C", Length: 20, Sensitivity: "sensitive", MaskRule: "keep(3,4)", QualityRule: "phone"},
		{Name: "人员编号", MachineName: "person_no", DataType: "C", Length: 16, QualityRule: "required;unique"},
		{Name: "户号", MachineName: "household_no", DataType: "C", Length: 12},
	}
}

// keyItem and rangeItem name the key and the unique item downloads range on.
const (
	keyItem   = "id_number"
	rangeItem = "person_no"
)

// people makes the rows; it keeps the birth dates' texts.
type people struct {
	ymd, iso []string // birth dates by day offset: 19850304, 1985-03-04
}

func newPeople() *people {
	p := &people{ymd: make([]string, birthDays), iso: make([]string, birthDays)}
	for d := range birthDays {
		t := birthFrom.AddDate(0, 0, d)
		p.ymd[d], p.iso[d] = t.Format("20060102"), t.Format("2006-01-02")
	}
	return p
}

// mix scrambles a row number into the choices that do not make it
// unique (names, ethnic group, address), so neighbouring rows differ.
func mix(i int64) uint64 {
	z := uint64(i) + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// parts places row i: its district, its birth day and its three-digit
// sequence number (odd for a man). Row numbers below MaxRows give
// distinct (district, day, sequence), hence distinct IDs.
func parts(i int64) (district, day, seq int) {
	nd := int64(len(districts))
	district = int(i % nd)
	day = int(i / nd % birthDays)
	seq = int(i/(nd*birthDays))*2 + int(mix(i)>>63)
	return
}

// ID is the citizen ID of row i.
func (p *people) ID(i int64) string {
	d, day, seq := parts(i)
	var b [18]byte
	copy(b[:6], districts[d].code)
	copy(b[6:14], p.ymd[day])
	b[14], b[15], b[16] = byte('0'+seq/100), byte('0'+seq/10%10), byte('0'+seq%10)
	b[17] = checkdigit.CitizenIDCheckChar(string(b[:17]))
	return string(b[:])
}

// PersonNo is the person number of row i: 3501 and twelve digits, so
// the numbers sort as the rows do.
func PersonNo(i int64) string {
	s := strconv.FormatInt(i, 10)
	b := make([]byte, 0, 16)
	b = append(b, "3501"...)
	for range 12 - len(s) {
		b = append(b, '0')
	}
	return string(append(b, s...))
}

// Person is one row's values in items() order ("" is empty).
type Person [10]string

// Person makes row i.
func (p *people) Person(i int64) Person {
	d, day, seq := parts(i)
	h := mix(i)
	var r Person
	r[0] = p.ID(i)
	name := []rune{surnames[h%uint64(len(surnames))], given[(h>>8)%uint64(len(given))]}
	if (h>>16)%3 != 0 {
		name = append(name, given[(h>>24)%uint64(len(given))])
	}
	r[1] = string(name)
	r[2] = "2"
	if seq%2 == 1 {
		r[2] = "1"
	}
	r[3] = p.iso[day]
	r[4] = "01"
	if (h>>32)%11 == 0 {
		r[4] = minorities[(h>>36)%uint64(len(minorities))]
	}
	r[5] = districts[d].code
	r[6] = "福建省福州市" + districts[d].name + roads[(h>>40)%uint64(len(roads))] + strconv.Itoa(int((h>>48)%400)+1) + "号"
	r[7] = "13" + PersonNo(i)[7:] // 13 and nine digits of the row number
	r[8] = PersonNo(i)
	r[9] = PersonNo(i / 3)[4:] // three people to a household
	return r
}
