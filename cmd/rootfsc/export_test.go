package main

// Export only what changed (issue 9): a rebuild with nothing changed leaves the dir output as it
// is, without solving; one changed file rewrites that file alone (the others are the previous
// output's inodes, taken by hard link); a tree edited by hand is exported again.

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/rootfsc/rootfsc/distros/lock"
)

func TestDirRebuild(t *testing.T) {
	h := newHarness(t)
	dir := writeManifest(t, manifest+`files: "/etc/motd": content: "one\n"
outputs: [{type: "dir", dest: "rootfs"}]
`)
	root := filepath.Join(dir, "rootfs")
	build := func() string {
		t.Helper()
		return h.run(dir, true, "build", "--progress=plain", "m.cue")
	}
	build()
	before := inodes(t, root)

	t.Run("no-op rebuild leaves the output", func(t *testing.T) {
		out := build()
		if !strings.Contains(out, "dir: "+root+" (up to date: it holds this result, not exported again)") {
			t.Errorf("the log does not say the output was up to date:\n%s", tail([]byte(out)))
		}
		if strings.Contains(out, "exporting to client tarball") {
			t.Errorf("a no-op rebuild exported:\n%s", tail([]byte(out)))
		}
		after := inodes(t, root)
		if before["."] != after["."] {
			t.Errorf("the output's root is a new inode (%d, was %d)", after["."], before["."])
		}
		if changed := changedPaths(before, after); len(changed) > 0 {
			t.Errorf("paths with a new inode after a no-op rebuild: %q", changed)
		}
	})

	t.Run("one changed file", func(t *testing.T) {
		edit(t, filepath.Join(dir, "m.cue"), `content: "one\n"`, `content: "two\n"`)
		out := build()
		if strings.Contains(out, "up to date") {
			t.Fatalf("a changed manifest was not exported:\n%s", tail([]byte(out)))
		}
		if b, err := os.ReadFile(filepath.Join(root, "etc/motd")); err != nil || string(b) != "two\n" {
			t.Errorf("/etc/motd = %q, %v; want the new content", b, err)
		}
		after := inodes(t, root)
		// Files with more than one name are written again (an inode is taken once, with one name).
		var changed []string
		for _, p := range changedPaths(before, after) {
			if fi, err := os.Lstat(filepath.Join(root, p)); err == nil && fi.Mode().IsRegular() && fi.Sys().(*syscall.Stat_t).Nlink == 1 {
				changed = append(changed, p)
			}
		}
		if len(changed) != 1 || changed[0] != "etc/motd" {
			t.Errorf("regular files written again, want only etc/motd: %q", changed)
		}
		lk, err := lock.Read(filepath.Join(dir, "m.cue.lock.json"))
		if err != nil {
			t.Fatal(err)
		}
		assertInstalled(t, root, lk)
		assertOwners(t, root)
	})

	t.Run("a tree edited by hand is exported again", func(t *testing.T) {
		issue := filepath.Join(root, "etc/issue")
		want, err := os.ReadFile(issue)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(issue, []byte("edited\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		out := build()
		if strings.Contains(out, "up to date") {
			t.Errorf("an edited output was taken as up to date:\n%s", tail([]byte(out)))
		}
		if got, err := os.ReadFile(issue); err != nil || string(got) != string(want) {
			t.Errorf("/etc/issue = %q, %v after the rebuild; want the build's %q", got, err, want)
		}
	})
}

// inodes maps every path below root ("." for root) to its inode.
func inodes(t *testing.T, root string) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		m[rel] = fi.Sys().(*syscall.Stat_t).Ino
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// changedPaths lists the paths of after that are new or another inode than in before.
func changedPaths(before, after map[string]uint64) []string {
	var out []string
	for p, ino := range after {
		if before[p] != ino {
			out = append(out, p)
		}
	}
	return slices.Sorted(slices.Values(out))
}
