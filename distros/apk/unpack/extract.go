package unpack

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/rootfsc/rootfsc/internal/rootfs"
)

// Bounds on one package: above Alpine's largest, far below what a small member could expand to.
const (
	maxEntries    = 1 << 20
	maxSize       = 16 << 30
	maxControl    = 16 << 20 // .PKGINFO and scripts
	maxControlEnt = 64
	maxTrailer    = 1 << 20 // after the data tar's end blocks: padding to the tar's block size
)

// ErrChecksum is wrapped by the errors for a package whose bytes are not the ones the index (and
// so the lock) or its own control member name.
var ErrChecksum = errors.New("checksum mismatch")

// Info is what a package's control member says of it (.PKGINFO), with the checksum of the member.
type Info struct {
	Name, Version, Arch, Description, URL, License, Origin, Maintainer, Commit string
	BuildDate, InstalledSize                                                   int64
	Depends, Provides, InstallIf, Replaces                                     []string
	ProviderPriority                                                           string
	// DataHash is the hex SHA-256 of the data member.
	DataHash string
	// Checksum is "Q1" and the base64 SHA-1 of the control member, the index's C: field.
	Checksum string
	// Scripts are the control member's install scripts by name (".post-install").
	Scripts map[string][]byte
}

// File is one entry of a package's data, as the installed database lists it.
type File struct {
	Path     string // cleaned, relative
	Dir      bool
	Uid, Gid int
	Mode     int64
	// SHA1 is the hex digest apk's tar records for a file or link (APK-TOOLS.checksum.SHA1).
	SHA1 string
}

// Package is one installed .apk: its control and its files in stream order.
type Package struct {
	Info
	// Size is the size of the .apk file (the index's and the database's S:).
	Size  int64
	Files []File
}

// Checksum returns the index form of a SHA-1 digest: "Q1" and base64.
func Checksum(sha1sum []byte) string {
	return "Q1" + base64.StdEncoding.EncodeToString(sha1sum)
}

// Extract lays the data of the .apk at path into root with [rootfs.Untar]'s rules (no absolute
// paths or "..", no links out of root, no device nodes, no second entry for a path, bounded
// size), after checking that its control member has the checksum want ("Q1…", the index's C:;
// "" skips the check), and then that the data member has the SHA-256 its control names.
func Extract(ctx context.Context, path, root, want string) (*Package, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := extract(ctx, f, root, want, maxEntries, maxSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if fi, err := f.Stat(); err == nil {
		p.Size = fi.Size()
	}
	return p, nil
}

func extract(ctx context.Context, r io.Reader, root, want string, maxEnt int, maxBytes int64) (*Package, error) {
	ar := NewReader(r)
	m, err := ar.Next()
	if err != nil {
		return nil, fmt.Errorf("not an apk: %w", err)
	}
	// The first member is the signature unless the package is unsigned; the lock's checksum
	// (from the signed index) is what vouches for the package here.
	entries, err := readSmallTar(m)
	if err != nil {
		return nil, fmt.Errorf("first member: %w", err)
	}
	signed := len(entries) > 0 && strings.HasPrefix(entries[0].name, ".SIGN.")
	if signed {
		ar.ResetHash()
		if m, err = ar.Next(); err != nil {
			return nil, fmt.Errorf("control member: %w", err)
		}
		if entries, err = readSmallTar(m); err != nil {
			return nil, fmt.Errorf("control member: %w", err)
		}
	}
	sum1, _ := ar.Sums()
	p := &Package{}
	p.Checksum = Checksum(sum1)
	if want != "" && p.Checksum != want {
		return nil, fmt.Errorf("control member %s does not match the lock's %s: %w", p.Checksum, want, ErrChecksum)
	}
	p.Scripts = map[string][]byte{}
	sawInfo := false
	for _, e := range entries {
		switch {
		case e.name == ".PKGINFO":
			sawInfo = true
			if err := parsePkgInfo(e.data, &p.Info); err != nil {
				return nil, fmt.Errorf(".PKGINFO: %w", err)
			}
		case strings.HasPrefix(e.name, ".") && !strings.Contains(e.name, "/"):
			p.Scripts[e.name] = e.data
		}
	}
	if !sawInfo {
		return nil, errors.New("control member has no .PKGINFO")
	}
	if p.Name == "" || p.Version == "" {
		return nil, errors.New(".PKGINFO names no pkgname or pkgver")
	}
	ar.ResetHash()
	data, err := ar.Next()
	if err != nil {
		return nil, fmt.Errorf("data member: %w", err)
	}
	// The untarrer and the file list read one stream: the list from a copy of what the untarrer
	// reads, so that both see the same headers.
	pr, pw := io.Pipe()
	listed := make(chan error, 1)
	go func() {
		files, err := listFiles(pr)
		p.Files = files
		io.Copy(io.Discard, pr)
		listed <- err
	}()
	opts := rootfs.UntarOpts{
		ParentLinks:   rootfs.Follow,
		Chown:         os.Geteuid() == 0,
		Xattrs:        true,
		RefuseDevices: true,
		MaxEntries:    maxEnt,
		MaxSize:       maxBytes,
	}
	err = rootfs.Untar(ctx, io.TeeReader(data, pw), root, opts)
	if err == nil {
		// The rest of the member (tar padding) belongs to the data hash; a bound keeps a
		// member that goes on after the tar's end from expanding without limit.
		var n int64
		if n, err = io.Copy(pw, io.LimitReader(data, maxTrailer+1)); err == nil && n > maxTrailer {
			err = fmt.Errorf("more than %d bytes after the tar's end", maxTrailer)
		}
	}
	pw.CloseWithError(err)
	if lerr := <-listed; err == nil && lerr != nil {
		err = lerr
	}
	if err != nil {
		return nil, fmt.Errorf("data member: %w", err)
	}
	_, sum256 := ar.Sums()
	if got := hex.EncodeToString(sum256); p.DataHash != "" && got != p.DataHash {
		return nil, fmt.Errorf("data member sha256 %s does not match the control's datahash %s: %w", got, p.DataHash, ErrChecksum)
	}
	if _, err := ar.Next(); err != ErrNoMember {
		return nil, errors.New("data after the data member")
	}
	return p, nil
}

type smallEntry struct {
	name string
	data []byte
}

// readSmallTar reads a signature or control member: a few small regular files.
func readSmallTar(r io.Reader) ([]smallEntry, error) {
	tr := tar.NewReader(r)
	var out []smallEntry
	var total int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(out) == maxControlEnt {
			return nil, fmt.Errorf("more than %d entries", maxControlEnt)
		}
		if total += h.Size; h.Size < 0 || total > maxControl {
			return nil, fmt.Errorf("larger than %d bytes", maxControl)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		out = append(out, smallEntry{h.Name, b})
	}
	// A segment cut without the tar end blocks ends here; read the gzip trailer.
	if _, err := io.Copy(io.Discard, io.LimitReader(r, maxControl)); err != nil {
		return nil, err
	}
	return out, nil
}

// listFiles reads the data tar's headers for the installed database.
func listFiles(r io.Reader) ([]File, error) {
	tr := tar.NewReader(r)
	var out []File
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		rel, err := rootfs.Name(h.Name)
		if err != nil || rel == "." {
			continue // the untarrer refuses bad names with their cause
		}
		out = append(out, File{
			Path: rel, Dir: h.Typeflag == tar.TypeDir,
			Uid: h.Uid, Gid: h.Gid, Mode: h.Mode & 0o7777,
			SHA1: h.PAXRecords["APK-TOOLS.checksum.SHA1"],
		})
	}
}

// parsePkgInfo reads .PKGINFO's "key = value" lines.
func parsePkgInfo(b []byte, in *Info) error {
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, " = ")
		if !ok {
			return fmt.Errorf("bad line %q", line)
		}
		var err error
		switch k {
		case "pkgname":
			in.Name = v
		case "pkgver":
			in.Version = v
		case "pkgdesc":
			in.Description = v
		case "url":
			in.URL = v
		case "builddate":
			in.BuildDate, err = strconv.ParseInt(v, 10, 64)
		case "packager", "maintainer":
			in.Maintainer = v
		case "size":
			in.InstalledSize, err = strconv.ParseInt(v, 10, 64)
		case "arch":
			in.Arch = v
		case "origin":
			in.Origin = v
		case "commit":
			in.Commit = v
		case "license":
			in.License = v
		case "depend":
			in.Depends = append(in.Depends, v)
		case "provides":
			in.Provides = append(in.Provides, v)
		case "install_if":
			in.InstallIf = append(in.InstallIf, strings.Fields(v)...)
		case "replaces":
			in.Replaces = append(in.Replaces, v)
		case "provider_priority":
			in.ProviderPriority = v
		case "datahash":
			in.DataHash = v
		}
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return sc.Err()
}

// ControlChecksum returns the "Q1…" checksum of the control member of the .apk read from r, the
// index's C: for it.
func ControlChecksum(r io.Reader) (string, error) {
	ar := NewReader(r)
	m, err := ar.Next()
	if err != nil {
		return "", fmt.Errorf("not an apk: %w", err)
	}
	entries, err := readSmallTar(m)
	if err != nil {
		return "", fmt.Errorf("first member: %w", err)
	}
	if len(entries) > 0 && strings.HasPrefix(entries[0].name, ".SIGN.") {
		ar.ResetHash()
		if m, err = ar.Next(); err != nil {
			return "", fmt.Errorf("control member: %w", err)
		}
		if _, err := readSmallTar(m); err != nil {
			return "", fmt.Errorf("control member: %w", err)
		}
	}
	sum, _ := ar.Sums()
	return Checksum(sum), nil
}
