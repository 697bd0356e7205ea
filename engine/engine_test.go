package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bkllb "github.com/moby/buildkit/client/llb"
	gateway "github.com/moby/buildkit/frontend/gateway/client"
	"golang.org/x/sys/unix"
)

func TestConnectBadAddr(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "nobody-listens.sock")
	addr := "unix://" + sock
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Connect(ctx, ConnectOpts{Addr: addr})
	if err == nil {
		c.Close()
		t.Fatal("Connect to a dead socket succeeded")
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name the address %s", err, addr)
	}
}

func TestSolveBadOutput(t *testing.T) {
	def, err := bkllb.Scratch().Marshal(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = solveDef(context.Background(), def, []Output{{Type: "floppy", Dest: "x"}}, Opts{ConnectOpts: ConnectOpts{Addr: "unix:///nonexistent"}})
	if err == nil || !strings.Contains(err.Error(), "unknown output type") {
		t.Errorf("err = %v, want unknown output type", err)
	}
}

func TestConnectNoBuildkitd(t *testing.T) {
	t.Setenv("BUILDKIT_HOST", "")
	t.Setenv("PATH", t.TempDir())
	_, err := Connect(context.Background(), ConnectOpts{StateDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "buildkitd not found") {
		t.Errorf("err = %v, want buildkitd not found", err)
	}
}

const helperSrc = `package main

import (
	"os"
	"syscall"
)

func main() {
	must(os.WriteFile("/made", []byte("made\n"), 0o644))
	must(os.Chown("/made", 7, 8))
	must(os.Chmod("/made", os.ModeSetuid|0o755))
	must(os.Symlink("made", "/madelink"))
	must(syscall.Mknod("/null", syscall.S_IFCHR|0o666, 1<<8|3))
	must(os.Chmod("/null", 0o666)) // undo the umask
	must(syscall.Setxattr("/made", "user.foo", []byte("bar"), 0))
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
`

// buildHelper compiles a static binary that runs inside the build.
func buildHelper(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(helperSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module helper\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "bin")
	cmd := exec.Command("go", "build", "-o", filepath.Join(out, "helper"), ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building helper: %v\n%s", err, b)
	}
	return out
}

func TestSolveEmbedded(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts buildkitd")
	}
	if _, err := exec.LookPath("buildkitd"); err != nil {
		t.Skip("buildkitd not on PATH (try PATH=/tmp/bk:$PATH): ", err)
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc not on PATH: ", err)
	}
	requireRoot(t)

	// Not t.TempDir: the socket path must stay short, and removal after
	// the daemon stops is best effort.
	state, err := os.MkdirTemp("", "rootfsc-eng-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Stop(state); err != nil {
			t.Errorf("Stop: %v", err)
		}
		os.RemoveAll(state)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var progress bytes.Buffer
	opts := Opts{
		ConnectOpts: ConnectOpts{StateDir: state},
		Progress:    "plain",
		ProgressOut: &progress,
		LocalDirs:   map[string]string{"helper": buildHelper(t)},
	}
	t.Setenv("BUILDKIT_HOST", "")

	st := bkllb.Scratch().
		File(bkllb.Mkdir("/etc", 0o755)).
		File(bkllb.Mkfile("/etc/hello", 0o640, []byte("hello\n"), bkllb.WithUIDGID(101, 102)))
	st = st.Run(
		bkllb.Args([]string{"/.h/helper"}),
		bkllb.AddMount("/.h", bkllb.Local("helper"), bkllb.Readonly),
		bkllb.Network(bkllb.NetModeNone),
		bkllb.WithCustomName("helper"),
	).Root()
	def, err := st.Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	dirDest := filepath.Join(out, "rootfs")
	tarDest := filepath.Join(out, "rootfs.tar")
	// A previous output is replaced.
	if err := os.MkdirAll(filepath.Join(dirDest, "stale"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mark(dirDest, markOutput); err != nil {
		t.Fatal(err)
	}
	res, err := solveDef(ctx, def, []Output{{Type: "dir", Dest: dirDest}, {Type: "tar", Dest: tarDest}}, opts)
	if err != nil {
		t.Fatalf("Solve: %v\nprogress:\n%s", err, progress.String())
	}
	if res == nil || res.ExporterResponse == nil {
		t.Fatalf("Result = %+v", res)
	}
	if !strings.Contains(progress.String(), "helper") {
		t.Errorf("progress output does not mention the vertex name:\n%s", progress.String())
	}

	type fileMeta struct {
		Mode     uint32
		UID, GID uint32
		Body     string
		Rdev     uint64
		Xattr    string
	}
	stat := func(p string) fileMeta {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		m := fileMeta{Mode: st.Mode, UID: st.Uid, GID: st.Gid, Rdev: st.Rdev}
		buf := make([]byte, 64)
		if n, err := unix.Lgetxattr(p, "user.foo", buf); err == nil {
			m.Xattr = string(buf[:n])
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			m.Body, _ = os.Readlink(p)
		} else if st.Mode&unix.S_IFMT == unix.S_IFREG {
			b, _ := os.ReadFile(p)
			m.Body = string(b)
		}
		return m
	}
	wantDir := map[string]fileMeta{
		"etc/hello": {Mode: unix.S_IFREG | 0o640, UID: 101, GID: 102, Body: "hello\n"},
		"made":      {Mode: unix.S_IFREG | 0o4755, UID: 7, GID: 8, Body: "made\n", Xattr: "bar"},
		"null":      {Mode: unix.S_IFCHR | 0o666, Rdev: unix.Mkdev(1, 3)},
		"madelink":  {Mode: unix.S_IFLNK | 0o777, Body: "made"},
	}
	gotDir := map[string]fileMeta{}
	for p := range wantDir {
		gotDir[p] = stat(filepath.Join(dirDest, p))
	}
	if diff := cmp.Diff(wantDir, gotDir); diff != "" {
		t.Errorf("dir output (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dirDest, "stale")); !os.IsNotExist(err) {
		t.Errorf("stale content survived: %v", err)
	}

	// The tar output carries the same owners and modes.
	f, err := os.Open(tarDest)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gotTar := map[string]fileMeta{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(h.Name, "./")
		if _, ok := wantDir[name]; !ok {
			continue
		}
		m := fileMeta{Mode: uint32(h.Mode) & 0o7777, UID: uint32(h.Uid), GID: uint32(h.Gid), Xattr: h.PAXRecords["SCHILY.xattr.user.foo"]}
		switch h.Typeflag {
		case tar.TypeReg:
			m.Mode |= unix.S_IFREG
			b, _ := io.ReadAll(tr)
			m.Body = string(b)
		case tar.TypeSymlink:
			m.Mode |= unix.S_IFLNK
			m.Body = h.Linkname
		case tar.TypeChar:
			m.Mode |= unix.S_IFCHR
			m.Rdev = unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
		}
		gotTar[name] = m
	}
	if diff := cmp.Diff(wantDir, gotTar); diff != "" {
		t.Errorf("tar output (-want +got):\n%s", diff)
	}
	if ents := dirNames(t, out); !cmp.Equal(ents, []string{"rootfs", "rootfs.tar"}) {
		t.Errorf("leftovers next to outputs: %v", ents)
	}

	// A failing solve leaves an existing Dest alone and nothing behind.
	bad, err := bkllb.Scratch().Run(bkllb.Args([]string{"/does-not-exist"}), bkllb.Network(bkllb.NetModeNone)).Root().Marshal(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := solveDef(ctx, bad, []Output{{Type: "dir", Dest: dirDest}, {Type: "tar", Dest: tarDest}}, opts); err == nil {
		t.Fatal("Solve of a failing exec succeeded")
	}
	if got := stat(filepath.Join(dirDest, "made")); got != wantDir["made"] {
		t.Errorf("dir output changed by failed solve: %+v", got)
	}
	if ents := dirNames(t, out); !cmp.Equal(ents, []string{"rootfs", "rootfs.tar"}) {
		t.Errorf("leftovers after failed solve: %v", ents)
	}

	// A second Connect reuses the running daemon.
	pid1, _ := os.ReadFile(filepath.Join(state, "buildkitd.pid"))
	c, err := Connect(ctx, ConnectOpts{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	pid2, _ := os.ReadFile(filepath.Join(state, "buildkitd.pid"))
	if string(pid1) != string(pid2) {
		t.Errorf("daemon restarted: pid %q -> %q", pid1, pid2)
	}
}

// solveDef builds def through [Build], as a build function that solves it and returns its result.
func solveDef(ctx context.Context, def *bkllb.Definition, outputs []Output, opts Opts) (*Result, error) {
	return Build(ctx, func(ctx context.Context, c gateway.Client) (*gateway.Result, error) {
		return c.Solve(ctx, gateway.SolveRequest{Definition: def.ToPB(), Evaluate: true})
	}, outputs, opts)
}
