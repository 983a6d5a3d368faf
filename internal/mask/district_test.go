package mask_test

import "testing"

// Addresses are synthetic: real administrative divisions, made-up streets.
func TestDistrictKeepsTheAddressUpToItsDistrict(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"province city district", "福建省福州市鼓楼区五四路100号", "福建省福州市鼓楼区****"},
		{"city district", "广州市海珠区新港中路1号", "广州市海珠区****"},
		{"district only", "鼓楼区五四路100号", "鼓楼区****"},
		{"bare district is marked too", "福建省福州市鼓楼区", "福建省福州市鼓楼区****"},
		{"municipality", "北京市朝阳区建国路88号", "北京市朝阳区****"},
		{"municipality new district", "上海市浦东新区世纪大道100号", "上海市浦东新区****"},
		{"municipality county", "重庆市城口县葛城街道", "重庆市城口县****"},
		{"code-table placeholder 市辖区", "北京市市辖区东城区东华门街道", "北京市市辖区东城区****"},
		{"district named 市中区", "山东省济南市市中区经四路1号", "山东省济南市市中区****"},
		{"district named 镇海区", "浙江省宁波市镇海区骆驼街道", "浙江省宁波市镇海区****"},
		{"district named 路南区", "河北省唐山市路南区新华道1号", "河北省唐山市路南区****"},
		{"district named 鼓楼区 then 道山路", "福州市鼓楼区道山路1号", "福州市鼓楼区****"},
		{"street with 区 after the district", "福建省福州市仓山区金山工业区3号", "福建省福州市仓山区****"},
		{"autonomous region, league, banner", "内蒙古自治区锡林郭勒盟正蓝旗上都镇", "内蒙古自治区锡林郭勒盟正蓝旗****"},
		{"autonomous banner", "内蒙古自治区呼伦贝尔市鄂温克族自治旗巴彦托海镇", "内蒙古自治区呼伦贝尔市鄂温克族自治旗****"},
		{"autonomous region without suffix", "内蒙古锡林郭勒盟锡林浩特市宝力根路", "内蒙古锡林郭勒盟锡林浩特市****"},
		{"long autonomous county", "云南省临沧市双江拉祜族佤族布朗族傣族自治县勐勐镇", "云南省临沧市双江拉祜族佤族布朗族傣族自治县****"},
		{"autonomous prefecture, county-level city", "新疆维吾尔自治区克孜勒苏柯尔克孜自治州阿图什市光明路", "新疆维吾尔自治区克孜勒苏柯尔克孜自治州阿图什市****"},
		{"zhuang autonomous region", "广西壮族自治区南宁市青秀区民族大道1号", "广西壮族自治区南宁市青秀区****"},
		{"prefecture 地区", "黑龙江省大兴安岭地区漠河市北极镇", "黑龙江省大兴安岭地区漠河市****"},
		{"county-level city", "江苏省苏州市昆山市玉山镇人民路1号", "江苏省苏州市昆山市****"},
		{"county-level city under a province", "湖北省仙桃市干河街道", "湖北省仙桃市****"},
		{"forestry district under a province", "湖北省神农架林区松柏镇", "湖北省神农架林区****"},
		{"city without districts", "广东省东莞市南城街道鸿福路1号", "广东省东莞市****"},
		{"county-level city alone", "昆山市玉山镇人民路1号", "昆山市****"},
		{"special administrative region", "香港特别行政区油尖旺区弥敦道1号", "香港特别行政区油尖旺区****"},
		{"spaces between units", "福建省 福州市 鼓楼区 五四路100号", "福建省 福州市 鼓楼区****"},
		{"surrounding spaces", "  广州市海珠区新港中路1号 ", "广州市海珠区****"},
		{"level word inside a name: 红旗区", "河南省新乡市红旗区人民路1号", "河南省新乡市红旗区****"},
		{"level word inside a name: 梅县区", "广东省梅州市梅县区程江镇", "广东省梅州市梅县区****"},
		{"level word inside a name: 辉县市", "河南省新乡市辉县市百泉镇", "河南省新乡市辉县市****"},
		{"level word inside a name: 津市市", "湖南省常德市津市市人民路1号", "湖南省常德市津市市****"},
		{"level word inside a name: 新市区", "新疆维吾尔自治区乌鲁木齐市新市区北京路1号", "新疆维吾尔自治区乌鲁木齐市新市区****"},
		{"level word inside a name: 西盟佤族自治县", "云南省普洱市西盟佤族自治县勐梭镇", "云南省普洱市西盟佤族自治县****"},
		{"street word inside a name: 上街区", "河南省郑州市上街区中心路1号", "河南省郑州市上街区****"},
		{"street word inside a name: 孟村回族自治县", "河北省沧州市孟村回族自治县新华路1号", "河北省沧州市孟村回族自治县****"},
		{"camp-like name: 船营区", "吉林省吉林市船营区北京路1号", "吉林省吉林市船营区****"},
		{"park-like name: 梁园区", "河南省商丘市梁园区凯旋路1号", "河南省商丘市梁园区****"},
		{"province then autonomous county", "海南省白沙黎族自治县牙叉镇", "海南省白沙黎族自治县****"},
		{"town-level 区 is no district", "广东省中山市石岐区街道孙文中路1号", "广东省中山市****"},
		// When unsure, keep less.
		{"residential 小区 is no district", "福州市金山小区3号楼", "福州市****"},
		{"street named 红旗路", "福州市红旗路12号", "福州市****"},
		{"village named 红旗新村", "福州市红旗新村3号", "福州市****"},
		{"street named 旗山路", "福州市旗山路1号", "福州市****"},
		{"street named 县前街", "福州市县前街2号", "福州市****"},
		{"compound section 花园东区", "福州市阳光花园东区5号楼", "福州市****"},
		{"industrial park", "福州市金山工业园区8号", "福州市****"},
		{"city but no district", "福州市五四路100号", "福州市****"},
		{"province only", "福建省五四路100号", "福建省****"},
		{"municipality only", "北京市", "北京市****"},
		{"no unit: half, at most 6", "五四路100号", "五四路****"},
		{"no unit, long", "福建福州鼓楼五四路100号", "福建福州鼓楼****"},
		{"市场 is not a city", "福建省台江市场2号", "福建省****"},
		{"ASCII", "100 Main Street, Springfield", "100 Ma****"},
		{"one character", "福", "****"},
	} {
		if got := apply(t, "district", tc.in); got != tc.want {
			t.Errorf("%s: district(%q) = %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}
