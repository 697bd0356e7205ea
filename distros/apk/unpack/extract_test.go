package unpack_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rootfsc/rootfsc/distros/apk/apktest"
	"github.com/rootfsc/rootfsc/distros/apk/unpack"
)

func build(t *testing.T, p apktest.Package, key *apktest.Key) *apktest.Built {
	t.Helper()
	b, err := apktest.Build(p, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func write(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var hello = apktest.Package{
	Name: "hello", Version: "1.0-r0", Description: "says hello", BuildDate: 1700000000,
	Depends: []string{"so:libc.musl-x86_64.so.1"}, Provides: []string{"cmd:hello=1.0-r0"},
	Scripts: map[string]string{".post-install": "#!/bin/sh\necho hi\n"},
	Files: []apktest.File{
		{Path: "usr", Dir: true},
		{Path: "usr/bin", Dir: true},
		{Path: "usr/bin/hello", Mode: 0o755, Data: []byte("#!/bin/sh\necho hello\n")},
		{Path: "usr/bin/hi", Link: "hello"},
		{Path: "var/lib/hello", Dir: true, Mode: 0o700, Uid: 100, Gid: 101},
	},
}

func TestInstall(t *testing.T) {
	key, err := apktest.NewKey("test@rootfsc-1.rsa.pub")
	if err != nil {
		t.Fatal(err)
	}
	b := build(t, hello, key)
	dir, root := t.TempDir(), t.TempDir()
	apk := write(t, dir, "hello.apk", b.APK)
	pkgs, err := unpack.Install(context.Background(), root, []unpack.Item{{Path: apk, Checksum: b.Checksum}}, []string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 1 || pkgs[0].Name != "hello" || pkgs[0].Checksum != b.Checksum {
		t.Fatalf("Install() = %+v", pkgs)
	}
	got, err := os.ReadFile(filepath.Join(root, "usr/bin/hello"))
	if err != nil || string(got) != "#!/bin/sh\necho hello\n" {
		t.Fatalf("usr/bin/hello = %q, %v", got, err)
	}
	if l, err := os.Readlink(filepath.Join(root, "usr/bin/hi")); err != nil || l != "hello" {
		t.Fatalf("usr/bin/hi -> %q, %v", l, err)
	}
	db, err := os.ReadFile(filepath.Join(root, unpack.InstalledDB))
	if err != nil {
		t.Fatal(err)
	}
	want := "C:" + b.Checksum + "\nP:hello\nV:1.0-r0\nA:x86_64\nS:" + itoa(len(b.APK)) + "\nI:21\nT:says hello\n" +
		"U:https://example.invalid/hello\nL:MIT\no:hello\nm:rootfsc tests\nt:1700000000\n" +
		"D:so:libc.musl-x86_64.so.1\np:cmd:hello=1.0-r0\n" +
		"F:usr\nF:usr/bin\nR:hello\na:0:0:755\nZ:" + sha1Q("#!/bin/sh\necho hello\n") + "\nR:hi\na:0:0:777\nZ:" + sha1Q("hello") + "\n" +
		"F:var/lib/hello\nM:100:101:700\n\n"
	if diff := cmp.Diff(want, string(db)); diff != "" {
		t.Errorf("installed database mismatch (-want +got):\n%s", diff)
	}
	world, _ := os.ReadFile(filepath.Join(root, unpack.WorldFile))
	if string(world) != "hello\n" {
		t.Errorf("world = %q", world)
	}
}

func TestExtractRefuses(t *testing.T) {
	key, err := apktest.NewKey("test@rootfsc-1.rsa.pub")
	if err != nil {
		t.Fatal(err)
	}
	good := build(t, hello, key)
	other := hello
	other.Files = append([]apktest.File{}, hello.Files...)
	other.Files[2].Data = []byte("#!/bin/sh\necho evil\n")
	evil := build(t, other, key)
	// The good package's signature and control with another data member: the control's datahash
	// no longer holds.
	spliced := append(append([]byte{}, good.APK[:len(good.APK)-dataLen(t, good)]...), evil.APK[len(evil.APK)-dataLen(t, evil):]...)
	for _, tc := range []struct {
		name  string
		apk   []byte
		want  string
		cause error
	}{
		{"wrong control", good.APK, "does not match the lock's", unpack.ErrChecksum},
		{"other data", spliced, "does not match the control's datahash", unpack.ErrChecksum},
		{"escape", build(t, apktest.Package{Name: "x", Version: "1-r0", Files: []apktest.File{{Path: "../x", Data: []byte("x")}}}, key).APK, `path contains ".."`, nil},
		{"link out", build(t, apktest.Package{Name: "x", Version: "1-r0", Files: []apktest.File{{Path: "etc", Link: "../../.."}, {Path: "etc/passwd", Data: []byte("x")}}}, key).APK, `entry "etc": symlink to "../../..": target leaves the root`, nil},
		{"not an apk", []byte("!<arch>\n"), "not an apk: unexpected EOF", nil},
		{"trailing", append(append([]byte{}, good.APK...), good.APK[:dataLen(t, good)]...), "data after the data member", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, root := t.TempDir(), filepath.Join(t.TempDir(), "root")
			want := ""
			if tc.name == "wrong control" {
				want = evil.Checksum
			}
			p := write(t, dir, "p.apk", tc.apk)
			_, err := unpack.Install(context.Background(), root, []unpack.Item{{Path: p, Checksum: want}}, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Install() error = %v, want %q", err, tc.want)
			}
			if testing.Verbose() {
				t.Log(err)
			}
			if tc.cause != nil && !errors.Is(err, tc.cause) {
				t.Fatalf("Install() error = %v, want %v", err, tc.cause)
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(root), "x")); err == nil {
				t.Fatal("an entry was written outside the root")
			}
		})
	}
}

func TestLinkInit(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	// busybox's /sbin/init gives way to the agent's.
	if err := os.Symlink("/bin/busybox", filepath.Join(root, "sbin/init")); err != nil {
		t.Fatal(err)
	}
	if err := unpack.LinkInit(root); err != nil {
		t.Fatal(err)
	}
	if l, err := os.Readlink(filepath.Join(root, "sbin/init")); err != nil || l != "../usr/sbin/init" {
		t.Errorf("/sbin/init -> %q, %v; want ../usr/sbin/init", l, err)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sbin/init"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unpack.LinkInit(dir); err == nil || err.Error() != "/sbin/init: a directory where init goes" {
		t.Errorf("LinkInit() over a directory: %v", err)
	}
	// A /sbin that leads out of the root is not followed.
	out := t.TempDir()
	esc := t.TempDir()
	if err := os.Symlink(out, filepath.Join(esc, "sbin")); err != nil {
		t.Fatal(err)
	}
	if err := unpack.LinkInit(esc); err == nil {
		t.Error("LinkInit() followed /sbin out of the root")
	}
	if _, err := os.Lstat(filepath.Join(out, "init")); err == nil {
		t.Error("LinkInit() wrote outside the root")
	}
}

func TestRunScripts(t *testing.T) {
	busybox, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("no static busybox on the host (apt-get install busybox-static): %v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	dir, root := t.TempDir(), t.TempDir()
	var items []unpack.Item
	// later comes first in the list but depends on busybox, whose post-install makes the mkdir
	// that later's scripts use.
	for _, p := range []apktest.Package{
		{Name: "later", Version: "2-r0", Depends: []string{"cmd:busybox"}, Scripts: map[string]string{
			".pre-install":  "#!/bin/sh\nset -e\nmkdir -p /var/later\necho \"pre $1\" >> /log\n",
			".post-install": "#!/bin/sh\necho \"post $1\" >> /log\n"}},
		{Name: "busybox", Version: "1.36.1-r29", Provides: []string{"cmd:busybox=1.36.1-r29"},
			Files:   []apktest.File{{Path: "bin", Dir: true}, {Path: "bin/busybox", Mode: 0o755, Data: busybox}, {Path: "bin/sh", Link: "busybox"}},
			Scripts: map[string]string{".post-install": "#!/bin/sh\nset -e\n/bin/busybox --install -s\necho \"post $1\" >> /log\n"}},
	} {
		b := build(t, p, nil)
		items = append(items, unpack.Item{Path: write(t, dir, p.Name+".apk", b.APK), Checksum: b.Checksum})
	}
	pkgs, err := unpack.Install(context.Background(), root, items, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := unpack.RunScripts(context.Background(), root, pkgs); err != nil {
		t.Fatal(err)
	}
	log, _ := os.ReadFile(filepath.Join(root, "log"))
	// Package by package in dependency order, each script given the version.
	if diff := cmp.Diff("post 1.36.1-r29\npre 2-r0\npost 2-r0\n", string(log)); diff != "" {
		t.Errorf("scripts ran out of order (-want +got):\n%s", diff)
	}
	if l, err := os.Readlink(filepath.Join(root, "bin/ls")); err != nil || l != "/bin/busybox" {
		t.Errorf("busybox's post-install made no /bin/ls: %q, %v", l, err)
	}
	if _, err := os.Lstat(filepath.Join(root, ".rootfsc-apk-scripts")); !os.IsNotExist(err) {
		t.Errorf("the scripts were left in the root: %v", err)
	}

	// A failing script names the package and the script, with its output.
	bad := build(t, apktest.Package{Name: "bad", Version: "1-r0", Scripts: map[string]string{".post-install": "#!/bin/sh\necho cannot >&2\nexit 3\n"}}, nil)
	pkgs, err = unpack.Install(context.Background(), root, []unpack.Item{{Path: write(t, dir, "bad.apk", bad.APK)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = unpack.RunScripts(context.Background(), root, pkgs)
	if err == nil || err.Error() != "bad 1-r0 .post-install: exit status 3\ncannot\n" {
		t.Errorf("RunScripts() error = %q, want the package, the script, the status and the output", err)
	}
}

func TestOrder(t *testing.T) {
	p := func(name string, deps []string, provides ...string) *unpack.Package {
		return &unpack.Package{Info: unpack.Info{Name: name, Depends: deps, Provides: provides}}
	}
	names := func(ps []*unpack.Package) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   []*unpack.Package
		want []string
	}{
		{"kept without dependencies", []*unpack.Package{p("b", nil), p("a", nil)}, []string{"b", "a"}},
		{"by name and version", []*unpack.Package{p("bash", []string{"busybox>=1.36"}), p("busybox", nil)}, []string{"busybox", "bash"}},
		{"by provide", []*unpack.Package{p("bash", []string{"/bin/sh", "so:libc.musl-x86_64.so.1"}), p("busybox-binsh", []string{"busybox"}, "/bin/sh"), p("busybox", []string{"so:libc.musl-x86_64.so.1"}), p("musl", nil, "so:libc.musl-x86_64.so.1=1")},
			[]string{"musl", "busybox", "busybox-binsh", "bash"}},
		{"conflicts are no order", []*unpack.Package{p("a", []string{"!b"}), p("b", nil)}, []string{"a", "b"}},
		{"a cycle is broken", []*unpack.Package{p("a", []string{"b"}), p("b", []string{"a"})}, []string{"b", "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, names(unpack.Order(tc.in))); diff != "" {
				t.Errorf("Order() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
