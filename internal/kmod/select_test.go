package kmod

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// tree writes a modules tree with modules.dep and returns its folder.
func tree(t *testing.T, dep string, files ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "6.1.0-28-amd64")
	for _, f := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

const dep = `kernel/drivers/net/vxlan/vxlan.ko: kernel/net/ipv6/ip6_udp_tunnel.ko kernel/net/ipv4/udp_tunnel.ko
kernel/net/ipv6/ip6_udp_tunnel.ko:
kernel/net/ipv4/udp_tunnel.ko:
kernel/drivers/virtio/virtio_balloon.ko:
kernel/drivers/block/virtio_blk.ko.xz:
kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko: kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko kernel/net/vmw_vsock/vsock.ko
kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko: kernel/net/vmw_vsock/vsock.ko
kernel/net/vmw_vsock/vsock.ko:
kernel/fs/fuse/virtiofs.ko: kernel/fs/fuse/fuse.ko
kernel/fs/fuse/fuse.ko:
kernel/sound/snd-hda-intel.ko:
`

var files = []string{
	"kernel/drivers/net/vxlan/vxlan.ko", "kernel/net/ipv6/ip6_udp_tunnel.ko", "kernel/net/ipv4/udp_tunnel.ko",
	"kernel/drivers/virtio/virtio_balloon.ko", "kernel/drivers/block/virtio_blk.ko.xz",
	"kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko", "kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko",
	"kernel/net/vmw_vsock/vsock.ko", "kernel/fs/fuse/virtiofs.ko", "kernel/fs/fuse/fuse.ko", "kernel/sound/snd-hda-intel.ko",
	"modules.builtin", "modules.order",
}

func TestSelect(t *testing.T) {
	for _, tt := range []struct {
		name    string
		include []string
		kept    []string
	}{
		{"a module and its dependencies", []string{"vxlan"},
			[]string{"kernel/drivers/net/vxlan/vxlan.ko", "kernel/net/ipv4/udp_tunnel.ko", "kernel/net/ipv6/ip6_udp_tunnel.ko"}},
		{"globs, compressed modules, chains of dependencies", []string{"virtio_*", "vmw_vsock_virtio_transport"},
			[]string{"kernel/drivers/block/virtio_blk.ko.xz", "kernel/drivers/virtio/virtio_balloon.ko",
				"kernel/net/vmw_vsock/vmw_vsock_virtio_transport.ko", "kernel/net/vmw_vsock/vmw_vsock_virtio_transport_common.ko", "kernel/net/vmw_vsock/vsock.ko"}},
		{"- and _ are the same", []string{"snd_hda-intel", "virtiofs"},
			[]string{"kernel/fs/fuse/fuse.ko", "kernel/fs/fuse/virtiofs.ko", "kernel/sound/snd-hda-intel.ko"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := tree(t, dep, files...)
			res, err := Select(dir, tt.include)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.kept, res.Kept); diff != "" {
				t.Errorf("Select() kept (-want +got):\n%s", diff)
			}
			var left []string
			filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					rel, _ := filepath.Rel(dir, p)
					left = append(left, rel)
				}
				return nil
			})
			want := append([]string{"modules.builtin", "modules.dep", "modules.order"}, tt.kept...)
			slices.Sort(want)
			slices.Sort(left)
			if diff := cmp.Diff(want, left); diff != "" {
				t.Errorf("files left in the tree (-want +got):\n%s", diff)
			}
			if res.Removed != len(files)-2-len(tt.kept) {
				t.Errorf("Removed = %d, want %d", res.Removed, len(files)-2-len(tt.kept))
			}
			// Folders that held only removed modules go.
			keepsSound := slices.Contains(tt.kept, "kernel/sound/snd-hda-intel.ko")
			if _, err := os.Stat(filepath.Join(dir, "kernel/sound")); !keepsSound && !os.IsNotExist(err) {
				t.Errorf("kernel/sound is left: %v", err)
			}
		})
	}
}

func TestSelectRefuses(t *testing.T) {
	for _, tt := range []struct {
		name, dep string
		include   []string
		want      string
	}{
		{"no module of that name", dep, []string{"vxlan", "virtio_gpu"}, `modules.include "virtio_gpu": no module of 6.1.0-28-amd64 has that name`},
		{"a bad pattern", dep, []string{"virtio_[x"}, `modules.include "virtio_[x": syntax error in pattern`},
		{"a path out of the tree", "kernel/a.ko: ../../../etc/shadow.ko\n", []string{"a"}, `modules.dep:1: "../../../etc/shadow.ko" is not a module file in the tree`},
		{"an absolute path", "/etc/a.ko:\n", []string{"a"}, `modules.dep:1: "/etc/a.ko" is not a module file in the tree`},
		{"not a module", "kernel/a.ko: modules.builtin\n", []string{"a"}, `modules.dep:1: "modules.builtin" is not a module file in the tree`},
		{"no colon", "kernel/a.ko\n", []string{"a"}, `modules.dep:1: no colon`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := tree(t, tt.dep, files...)
			_, err := Select(dir, tt.include)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("Select() error = %v, want %q", err, tt.want)
			}
			// Nothing was removed.
			for _, f := range files {
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Errorf("%s removed by a refused selection: %v", f, err)
				}
			}
		})
	}
	if _, err := Select(t.TempDir(), []string{"a"}); err == nil || !errorsIsNotExist(err) {
		t.Errorf("Select() of a tree without modules.dep = %v, want a missing modules.dep", err)
	}
}

func errorsIsNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
