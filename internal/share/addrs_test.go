package share

import "testing"

// An app's allowed addresses are single addresses or networks, read
// once; a request's address is compared as an address, so an IPv4
// client seen as IPv4-mapped IPv6 is still itself.
func TestAllowedAddresses(t *testing.T) {
	for _, c := range []struct {
		allowed []string
		addr    string
		want    bool
	}{
		{nil, "203.0.113.9", true},
		{[]string{"127.0.0.0/8"}, "127.0.0.1", true},
		{[]string{"127.0.0.0/8"}, "::ffff:127.0.0.1", true},
		{[]string{"127.0.0.0/8"}, "128.0.0.1", false},
		{[]string{"10.1.2.3"}, "10.1.2.3", true},
		{[]string{"10.1.2.3"}, "10.1.2.4", false},
		{[]string{"10.1.2.3/16"}, "10.1.200.200", true}, // a network written with host bits
		{[]string{"2001:db8::/32"}, "2001:db8::1", true},
		{[]string{"2001:db8::/32"}, "2001:db9::1", false},
		{[]string{"192.168.0.0/24", "2001:db8::1"}, "2001:db8::1", true},
		{[]string{"127.0.0.0/8"}, "not an address", false},
		{[]string{"127.0.0.0/8"}, "", false},
	} {
		if got := parseAllowed(c.allowed).allows(c.addr); got != c.want {
			t.Errorf("%v allows %q: %v, want %v", c.allowed, c.addr, got, c.want)
		}
	}
}
