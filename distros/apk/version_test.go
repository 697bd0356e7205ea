package apk

import "testing"

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0-r1", "1.0-r0", 1},
		{"1.0-r10", "1.0-r9", 1},
		{"1.10", "1.9", 1},
		{"1.2.1", "1.2", 1},
		{"1.2a", "1.2", 1},
		{"1.2b", "1.2a", 1},
		{"1.2_rc1", "1.2", -1},
		{"1.2_alpha", "1.2_beta", -1},
		{"1.2_beta2", "1.2_beta10", -1},
		{"1.2_pre1", "1.2_rc1", -1},
		{"1.2_p1", "1.2", 1},
		{"1.2_p1", "1.2_git20230101", 1},
		{"1.2_cvs", "1.2", 1},
		{"1.01", "1.1", -1},
		{"1.001", "1.01", -1},
		{"2", "10", -1},
		{"1.36.1-r29", "1.36.1-r5", 1},
		{"0.9.9", "1", -1},
	} {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := compareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestDepMatches(t *testing.T) {
	for _, tc := range []struct {
		dep, version string
		want         bool
	}{
		{"a", "1.0", true},
		{"a", "", true},
		{"a>=1.2", "1.2-r0", true},
		{"a>=1.2", "1.1", false},
		{"a<1.2", "1.1.9", true},
		{"a<1.2", "1.2", false},
		{"a=1.2-r1", "1.2-r1", true},
		{"a=1.2-r1", "1.2-r2", false},
		{"a~1.2", "1.2.3-r0", true},
		{"a~1.2", "1.2-r4", true},
		{"a~1.2", "1.20", false},
		{"a>~1.2", "1.3", true},
		{"a>1.2", "", false}, // an unversioned provide meets no constraint
		{"a@testing>=1", "2", true},
	} {
		d, err := parseDep(tc.dep)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.matches(tc.version); got != tc.want {
			t.Errorf("%s matches %q = %v, want %v", tc.dep, tc.version, got, tc.want)
		}
	}
	for _, bad := range []string{"a>", "a=>1", "!"} {
		if _, err := parseDep(bad); err == nil {
			t.Errorf("parseDep(%q) succeeded", bad)
		}
	}
}
