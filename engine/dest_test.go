package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bkllb "github.com/moby/buildkit/client/llb"
	"golang.org/x/sys/unix"
)

func TestCheckDest(t *testing.T) {
	requireRoot(t) // trusted.* marks
	top := t.TempDir()
	work := filepath.Join(top, "a", "work")
	state := filepath.Join(top, "s", "state")
	foreign := filepath.Join(top, "foreign")
	ours := filepath.Join(top, "ours")
	oursFile := filepath.Join(top, "ours.tar")
	link := filepath.Join(top, "link")
	for _, d := range []string{work, state, foreign, ours} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(oursFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{ours, oursFile} {
		if err := mark(p, markOutput); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(ours, link); err != nil {
		t.Fatal(err)
	}
	t.Chdir(work)

	notOurs := func(d string) string {
		return "refusing to replace " + d + ": it exists and rootfsc did not write it (no trusted.rootfsc.output mark); remove it or use --force"
	}
	tests := []struct {
		name    string
		dest    string
		opts    DestOpts
		want    string // "" for allowed
		wantWhy string // the same with Force
	}{
		{"root", "/", DestOpts{Dir: true}, "refusing to replace /: it is /", "refusing to replace /: it is /"},
		{"root by dots", "../../../../../../../..", DestOpts{Dir: true}, "refusing to replace ../../../../../../../..: it is /", "refusing to replace ../../../../../../../..: it is /"},
		{"working dir", ".", DestOpts{Dir: true}, "refusing to replace .: it holds the working directory " + work + " (--force overrides)", ""},
		{"parent of the working dir", filepath.Join(top, "a"), DestOpts{Dir: true},
			"refusing to replace " + filepath.Join(top, "a") + ": it holds the working directory " + work + " (--force overrides)", ""},
		{"parent of the state dir", filepath.Join(top, "s"), DestOpts{Dir: true, StateDir: state},
			"refusing to replace " + filepath.Join(top, "s") + ": it holds the state directory " + state + " (--force overrides)", ""},
		{"folder rootfsc did not write", foreign, DestOpts{Dir: true}, notOurs(foreign), ""},
		{"a link to an output is not the output", link, DestOpts{Dir: true}, notOurs(link), ""},
		{"a previous output", ours, DestOpts{Dir: true}, "", ""},
		{"a previous file output", oursFile, DestOpts{}, "", ""},
		{"a file output over a folder", ours, DestOpts{}, "refusing to replace " + ours + ": it is a directory and the output is a file",
			"refusing to replace " + ours + ": it is a directory and the output is a file"},
		{"new", filepath.Join(top, "new", "rootfs"), DestOpts{Dir: true}, "", ""},
		{"relative new", "rootfs", DestOpts{Dir: true}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.StateDir == "" {
				tt.opts.StateDir = state
			}
			for _, force := range []bool{false, true} {
				o := tt.opts
				o.Force = force
				want := tt.want
				if force {
					want = tt.wantWhy
				}
				err := checkDest(tt.dest, o)
				got := ""
				if err != nil {
					got = err.Error()
					var de *DestError
					if !errors.As(err, &de) {
						t.Errorf("force=%v: %v is not a *DestError", force, err)
					}
				}
				if got != want {
					t.Errorf("checkDest(%q, force=%v) = %q, want %q", tt.dest, force, got, want)
				}
			}
		})
	}
}

// The old code replaced whatever folder an output named, /etc included: the refusal comes
// before the daemon is even asked.
func TestSolveRefusesForeignDest(t *testing.T) {
	requireRoot(t)
	dest := filepath.Join(t.TempDir(), "etc")
	if err := os.WriteFile(filepath.Join(filepath.Dir(dest), "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dest, 0o755); err != nil {
		t.Fatal(err)
	}
	def, err := bkllb.Scratch().Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = solveDef(context.Background(), def, []Output{{Type: "dir", Dest: dest}}, Opts{ConnectOpts: ConnectOpts{Addr: "unix:///nonexistent"}})
	want := "engine: dir output: refusing to replace " + dest + ": it exists and rootfsc did not write it (no trusted.rootfsc.output mark); remove it or use --force"
	if err == nil || err.Error() != want {
		t.Errorf("Solve err = %v\nwant %s", err, want)
	}
}

func TestTempAndCommit(t *testing.T) {
	requireRoot(t)
	parent := t.TempDir()
	dest := filepath.Join(parent, "rootfs")

	// What killed runs left: a marked temporary is removed; an unmarked one that only looks
	// like it is not; nor is one that a running build holds.
	killed := filepath.Join(parent, "rootfs.tmp-killed")
	if err := os.MkdirAll(filepath.Join(killed, "root", "etc"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := mark(killed, markTemp); err != nil {
		t.Fatal(err)
	}
	lookalike := filepath.Join(parent, "rootfs.tmp-users")
	if err := os.Mkdir(lookalike, 0o755); err != nil {
		t.Fatal(err)
	}
	running, err := tempDir(dest)
	if err != nil {
		t.Fatal(err)
	}
	defer running.Remove()

	tmp, err := tempDir(dest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(killed); !os.IsNotExist(err) {
		t.Errorf("the killed run's marked temporary survived: %v", err)
	}
	for _, p := range []string{lookalike, running.Path} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Dir(tmp.Path), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o700 {
		t.Errorf("temporary tree's wrapper mode = %o, want 700", st.Mode&0o777)
	}
	if err := unix.Lstat(tmp.Path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o777 != 0o755 {
		t.Errorf("temporary tree's root mode = %o, want 755 (a rootfs's /)", st.Mode&0o777)
	}
	if err := os.WriteFile(filepath.Join(tmp.Path, "new"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := commitDir(tmp, dest, DestOpts{}, ""); err != nil {
		t.Fatal(err)
	}
	if v, ok := marked(dest); !ok || v != markOutput {
		t.Errorf("dest mark = %q %v, want %q", v, ok, markOutput)
	}

	// A second output replaces the first in one exchange and leaves nothing behind.
	tmp2, err := tempDir(dest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp2.Path, "newer"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := commitDir(tmp2, dest, DestOpts{}, ""); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"newer"}, dirNames(t, dest)); diff != "" {
		t.Errorf("dest after the second commit (-want +got):\n%s", diff)
	}
	running.Remove()
	if diff := cmp.Diff([]string{"rootfs", "rootfs.tmp-users"}, dirNames(t, parent)); diff != "" {
		t.Errorf("parent (-want +got):\n%s", diff)
	}

	// Files: 0600 until committed, then 0644 and marked.
	tarDest := filepath.Join(parent, "rootfs.tar")
	ft, f, err := tempFile(tarDest)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	f.Close()
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("temporary file mode = %v, want 0600", fi.Mode().Perm())
	}
	if err := commitFile(ft, tarDest, DestOpts{}); err != nil {
		t.Fatal(err)
	}
	fi, err = os.Stat(tarDest)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("committed file: %v %v, want 0644", fi, err)
	}
	if _, ok := marked(tarDest); !ok {
		t.Error("committed file is not marked")
	}
}

// The initrd output goes through two temporaries (the exported tar, then the cpio); a rebuild
// replaces the previous initrd and neither temporary is left.
func TestSolveInitrdTemporaries(t *testing.T) {
	needBuildkitd(t)
	state := shortTemp(t)
	t.Cleanup(func() { Stop(state) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	def, err := bkllb.Scratch().
		File(bkllb.Mkdir("/sbin", 0o755)).
		File(bkllb.Mkfile("/sbin/init", 0o755, []byte("#!/bin/sh\n"))).
		Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	dest := filepath.Join(out, "x.initrd")
	for i := 0; i < 2; i++ {
		if _, err := solveDef(ctx, def, []Output{{Type: "initrd", Dest: dest}}, Opts{ConnectOpts: ConnectOpts{StateDir: state}, Progress: "quiet"}); err != nil {
			t.Fatalf("Solve %d: %v", i, err)
		}
		if diff := cmp.Diff([]string{"x.initrd"}, dirNames(t, out)); diff != "" {
			t.Errorf("after build %d (-want +got):\n%s", i, diff)
		}
		if _, ok := marked(dest); !ok {
			t.Errorf("the initrd is not marked")
		}
	}
}
