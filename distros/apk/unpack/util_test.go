package unpack_test

import (
	"bytes"
	"crypto/sha1"
	"io"
	"strconv"
	"testing"

	"github.com/rootfsc/rootfsc/distros/apk/apktest"
	"github.com/rootfsc/rootfsc/distros/apk/unpack"
)

func itoa(n int) string { return strconv.Itoa(n) }

func sha1Q(s string) string {
	sum := sha1.Sum([]byte(s))
	return unpack.Checksum(sum[:])
}

// dataLen is the compressed length of b's last (data) member, found with the Reader under test.
func dataLen(t *testing.T, b *apktest.Built) int {
	t.Helper()
	r := unpack.NewReader(bytes.NewReader(b.APK))
	var last int64
	for {
		start := r.Offset()
		m, err := r.Next()
		if err == unpack.ErrNoMember {
			return int(int64(len(b.APK)) - last)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, m); err != nil {
			t.Fatal(err)
		}
		last = start
	}
}
