package unpack

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/rootfsc/rootfsc/internal/rootfs"
)

// Extract unpacks the data.tar.* member of the .deb at debPath into root, preserving modes, owners,
// symlinks, hardlinks and mtimes. Entries with absolute paths or "..", symlinks whose target would
// leave root, hardlinks to outside root, device nodes, a second entry for one path, a
// non-directory over a directory, and more than 1M entries or 16 GiB are refused. Existing
// symlinks under root (such as the merged-/usr links) are followed as if root were "/"; nothing
// is written through a link, see [rootfs.Untar].
func Extract(ctx context.Context, debPath, root string) error {
	return extract(ctx, debPath, root, nil)
}

// Bounds on what one package may lay down: above Debian's largest packages, far below what a
// small compressed member could expand to.
const (
	maxDebEntries = 1 << 20
	maxDebSize    = 16 << 30
)

// extract is [Extract] with a filter: when keep is not nil, only the entries it accepts (by cleaned
// relative path, like "lib/modules/6.1.0-28-amd64") are laid down, with the directories above them.
func extract(ctx context.Context, debPath, root string, keep func(rel string) bool) error {
	f, err := os.Open(debPath)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	defer f.Close()
	opts := rootfs.UntarOpts{
		ParentLinks:   rootfs.Follow,
		Keep:          keep,
		Chown:         os.Geteuid() == 0,
		RefuseDevices: true, // Debian packages have none; udev and the kernel make them
		MaxEntries:    maxDebEntries,
		MaxSize:       maxDebSize,
	}
	if err := extractData(ctx, f, root, opts); err != nil {
		return fmt.Errorf("extract %s: %w", debPath, err)
	}
	return nil
}

// extractData lays the data.tar.* member of the .deb read from r into root.
func extractData(ctx context.Context, r io.Reader, root string, opts rootfs.UntarOpts) error {
	name, member, err := findData(bufio.NewReader(r))
	if err != nil {
		return err
	}
	var data io.Reader
	switch name {
	case "data.tar":
		data = member
	case "data.tar.xz":
		// The dictionary is the reader's (8 MiB, what xz -6 writes), not what the stream asks for.
		if data, err = xz.NewReader(member); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	case "data.tar.gz":
		gz, err := gzip.NewReader(member)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer gz.Close()
		data = gz
	case "data.tar.zst":
		// A window above zstd's largest without --long is refused rather than allocated.
		zr, err := zstd.NewReader(member, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(1<<27))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		defer zr.Close()
		data = zr
	default:
		return fmt.Errorf("unsupported member %s", name)
	}
	return rootfs.Untar(ctx, memberReader{data, name}, root, opts)
}

// memberReader names the member in its reader's errors: "data.tar.zst: window size exceeded".
type memberReader struct {
	r    io.Reader
	name string
}

func (m memberReader) Read(b []byte) (int, error) {
	n, err := m.r.Read(b)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: %w", m.name, err)
	}
	return n, err
}

// findData walks the ar archive and returns the data.tar member.
func findData(r *bufio.Reader) (string, io.Reader, error) {
	magic := make([]byte, 8)
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != "!<arch>\n" {
		return "", nil, fmt.Errorf("not a .deb (ar) archive")
	}
	hdr := make([]byte, 60)
	for {
		if _, err := io.ReadFull(r, hdr); err != nil {
			if errors.Is(err, io.EOF) {
				return "", nil, fmt.Errorf("no data.tar member")
			}
			return "", nil, fmt.Errorf("reading ar header: %w", err)
		}
		name := strings.TrimRight(strings.TrimSpace(string(hdr[0:16])), "/")
		size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil || size < 0 {
			return "", nil, fmt.Errorf("bad ar member size for %q", name)
		}
		if strings.HasPrefix(name, "data.tar") {
			return name, io.LimitReader(r, size), nil
		}
		if _, err := r.Discard(int(size + size%2)); err != nil {
			return "", nil, fmt.Errorf("ar member %s: %w", name, err)
		}
	}
}
