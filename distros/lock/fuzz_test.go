package lock

// Fuzzing of the lockfile reader: a lock is committed next to a manifest and may come from
// anyone, so Read must refuse what it cannot use without a panic, and what it accepts must
// survive a write and a second read unchanged.

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func FuzzRead(f *testing.F) {
	b, err := sample().Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	k := sample()
	k.Kernel = &Kernel{Package: Package{Name: "linux-image-6.1.0-28-amd64", Version: "6.1.119-1", SHA256: "cc"}, Release: "6.1.0-28-amd64", Requested: "linux-image-amd64"}
	if b, err = k.Marshal(); err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":2,"packages":[]}`))
	f.Add([]byte(`{"version":1,"extra":true}`))
	f.Add([]byte(`{"version":1}{"version":1}`))
	f.Add([]byte(`[`))
	dir := f.TempDir() // one per worker process, whose inputs run one at a time
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "m.cue.lock.json")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Read(p)
		if err != nil {
			return
		}
		if err := l.Write(p); err != nil {
			t.Fatalf("Write() of a lock Read accepted: %v", err)
		}
		l2, err := Read(p)
		if err != nil {
			t.Fatalf("Read() of a lock it wrote: %v", err)
		}
		l.Sort() // Write sorts and writes absent lists as []
		if diff := cmp.Diff(l, l2, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("lock changed through Write and Read (-first +second):\n%s", diff)
		}
		_ = l2.Verify(l2.InputDigest)
	})
}
