package unpack

import (
	"archive/tar"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// kernelDeb writes a .deb laid out like Debian's linux-image-* packages.
func kernelDeb(t *testing.T) string {
	t.Helper()
	m := "./lib/modules/6.1.0-28-amd64/"
	old := time.Date(2024, 12, 1, 0, 0, 0, 0, time.UTC)
	return writeDeb(t, "xz", []*tar.Header{
		{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./boot/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./boot/vmlinuz-6.1.0-28-amd64", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "./lib/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: old},
		{Name: "./lib/modules/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: old},
		{Name: m, Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: m + "kernel/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: m + "kernel/vsock.ko", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: m + "modules.order", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "./lib/modules-load.d/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./usr/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./usr/share/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./usr/share/doc/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./usr/share/doc/linux-image-6.1.0-28-amd64/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "./usr/share/doc/linux-image-6.1.0-28-amd64/copyright", Typeflag: tar.TypeReg, Mode: 0o644},
	}, map[string]string{
		"./boot/vmlinuz-6.1.0-28-amd64": "bzImage",
		m + "kernel/vsock.ko":           "\x7fELF",
		m + "modules.order":             "kernel/vsock.ko\n",
	})
}

// tree lists everything under root as "path: kind mode [mtime|target|body]".
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, fmt.Sprintf("%s -> %s", rel, target))
		case fi.IsDir():
			out = append(out, fmt.Sprintf("%s/ %o", rel, fi.Mode().Perm()))
		default:
			b, _ := os.ReadFile(p)
			out = append(out, fmt.Sprintf("%s %o %q", rel, fi.Mode().Perm(), b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBootstrapOnly(t *testing.T) {
	modules := []string{
		"6.1.0-28-amd64/ 755",
		"6.1.0-28-amd64/kernel/ 755",
		`6.1.0-28-amd64/kernel/vsock.ko 644 "\x7fELF"`,
		`6.1.0-28-amd64/modules.order 644 "kernel/vsock.ko\n"`,
	}
	under := func(dir string) []string {
		var out []string
		for _, m := range modules {
			out = append(out, dir+"/"+m)
		}
		return out
	}
	tests := []struct {
		name  string
		links bool // root made with the merged-/usr links, as a base layer has them
		opts  BootstrapOpts
		want  []string
	}{
		{
			name: "plain root",
			opts: BootstrapOpts{Only: []string{"lib/modules/", "usr/lib/modules/"}},
			want: append([]string{"lib/ 755", "lib/modules/ 755"}, under("lib/modules")...),
		},
		{
			name:  "merged /usr root",
			links: true,
			opts:  BootstrapOpts{Only: []string{"./lib/modules", "/usr/lib/modules/"}},
			want: append([]string{"bin -> usr/bin", "lib -> usr/lib", "lib64 -> usr/lib64", "sbin -> usr/sbin",
				"usr/ 755", "usr/bin/ 755", "usr/lib/ 755", "usr/lib/modules/ 755"}, append(under("usr/lib/modules"), "usr/lib64/ 755", "usr/sbin/ 755")...),
		},
		{
			name: "merged /usr links made by UsrMerge",
			opts: BootstrapOpts{UsrMerge: true, Only: []string{"lib/modules/"}},
			want: append([]string{"bin -> usr/bin", "lib -> usr/lib", "lib64 -> usr/lib64", "sbin -> usr/sbin",
				"usr/ 755", "usr/bin/ 755", "usr/lib/ 755", "usr/lib/modules/ 755"}, append(under("usr/lib/modules"), "usr/lib64/ 755", "usr/sbin/ 755")...),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.links {
				for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
					os.MkdirAll(filepath.Join(root, "usr", d), 0o755)
					os.Symlink("usr/"+d, filepath.Join(root, d))
				}
			}
			if err := Bootstrap(context.Background(), root, []string{kernelDeb(t)}, tt.opts); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, tree(t, root)); diff != "" {
				t.Errorf("Bootstrap() tree mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// The directories above the kept entries keep their packaged times, like everything else extracted.
func TestBootstrapOnlyParentMetadata(t *testing.T) {
	root := t.TempDir()
	if err := Bootstrap(context.Background(), root, []string{kernelDeb(t)}, BootstrapOpts{Only: []string{"lib/modules/"}}); err != nil {
		t.Fatal(err)
	}
	got := map[string]time.Time{}
	for _, p := range []string{"lib", "lib/modules", "lib/modules/6.1.0-28-amd64"} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		got[p] = fi.ModTime().UTC()
	}
	old := time.Date(2024, 12, 1, 0, 0, 0, 0, time.UTC)
	want := map[string]time.Time{"lib": old, "lib/modules": old, "lib/modules/6.1.0-28-amd64": mtime}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("directory times mismatch (-want +got):\n%s", diff)
	}
}

func TestBootstrapOnlyErrors(t *testing.T) {
	tests := []struct {
		name    string
		only    []string
		wantErr string
	}{
		{"nothing under the prefixes", []string{"usr/lib/modules/"}, "extracting test_1_amd64.deb: nothing under usr/lib/modules"},
		{"a prefix that only matches a sibling's start", []string{"lib/mod"}, "nothing under lib/mod"},
		{"root", []string{"lib/modules/", "/"}, `bootstrap: bad path prefix "/"`},
		{"dotdot", []string{"lib/../../etc"}, `bootstrap: bad path prefix "lib/../../etc"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			err := Bootstrap(context.Background(), root, []string{kernelDeb(t)}, BootstrapOpts{Only: tt.only})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Bootstrap() error = %v, want containing %q", err, tt.wantErr)
			}
		})
	}
}
