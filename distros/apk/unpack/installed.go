package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// Where apk keeps its state, relative to the root.
const (
	InstalledDB = "lib/apk/db/installed"
	ScriptsDB   = "lib/apk/db/scripts.tar"
	TriggersDB  = "lib/apk/db/triggers"
	WorldFile   = "etc/apk/world"
)

// Item is one .apk to install and the control checksum the lock has for it.
type Item struct {
	Path, Checksum string
}

// Install extracts the packages into root in order (see [Extract]) and writes apk's database
// for them: /lib/apk/db/installed, scripts.tar and triggers, and /etc/apk/world with the names
// in world. The database files are written through [os.Root], so a link a package laid down
// cannot send them out of root.
func Install(ctx context.Context, root string, items []Item, world []string) ([]*Package, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	var pkgs []*Package
	seen := map[string]bool{}
	for _, it := range items {
		p, err := Extract(ctx, it.Path, root, it.Checksum)
		if err != nil {
			return nil, err
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("%s: package %s installed twice", it.Path, p.Name)
		}
		seen[p.Name] = true
		pkgs = append(pkgs, p)
	}
	if err := WriteDB(root, pkgs, world); err != nil {
		return nil, err
	}
	return pkgs, nil
}

// WriteDB writes apk's database of pkgs under root.
func WriteDB(root string, pkgs []*Package, world []string) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	var db bytes.Buffer
	for _, p := range pkgs {
		writeInstalled(&db, p)
	}
	scripts, err := scriptsTar(pkgs)
	if err != nil {
		return err
	}
	w := slices.Clone(world)
	slices.Sort(w)
	w = slices.Compact(w)
	worldText := strings.Join(w, "\n")
	if worldText != "" {
		worldText += "\n"
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{InstalledDB, db.Bytes()},
		{ScriptsDB, scripts},
		{TriggersDB, nil},
		{WorldFile, []byte(worldText)},
	} {
		if err := r.MkdirAll(path.Dir(f.name), 0o755); err != nil {
			return fmt.Errorf("apk database: %w", err)
		}
		if err := r.WriteFile(f.name, f.data, 0o644); err != nil {
			return fmt.Errorf("apk database: %w", err)
		}
	}
	return nil
}

// writeInstalled writes p's stanza in the format of apk-tools 2's installed database: the
// index fields, then each directory (F:, with M: for other than root:root 0755) followed by its
// files (R:, with a: for other than root:root 0644, and Z: the file's checksum).
func writeInstalled(b *bytes.Buffer, p *Package) {
	field := func(k, v string) {
		if v != "" {
			fmt.Fprintf(b, "%s:%s\n", k, v)
		}
	}
	field("C", p.Checksum)
	field("P", p.Name)
	field("V", p.Version)
	field("A", p.Arch)
	field("S", fmt.Sprint(p.Size))
	field("I", fmt.Sprint(p.InstalledSize))
	field("T", p.Description)
	field("U", p.URL)
	field("L", p.License)
	field("o", p.Origin)
	field("m", p.Maintainer)
	if p.BuildDate != 0 {
		field("t", fmt.Sprint(p.BuildDate))
	}
	field("c", p.Commit)
	field("D", strings.Join(p.Depends, " "))
	field("p", strings.Join(p.Provides, " "))
	field("i", strings.Join(p.InstallIf, " "))
	field("r", strings.Join(p.Replaces, " "))
	field("k", p.ProviderPriority)
	dir := "."
	listed := map[string]bool{}
	enter := func(d string, f *File) {
		if d == dir {
			return
		}
		dir = d
		if listed[d] {
			fmt.Fprintf(b, "F:%s\n", d)
			return
		}
		listed[d] = true
		fmt.Fprintf(b, "F:%s\n", d)
		if f != nil && (f.Uid != 0 || f.Gid != 0 || f.Mode != 0o755) {
			fmt.Fprintf(b, "M:%d:%d:%o\n", f.Uid, f.Gid, f.Mode)
		}
	}
	for i := range p.Files {
		f := &p.Files[i]
		if f.Dir {
			enter(f.Path, f)
			continue
		}
		parent := path.Dir(f.Path)
		if parent == "." {
			continue // apk's database has no place for a file at the top
		}
		enter(parent, nil)
		fmt.Fprintf(b, "R:%s\n", path.Base(f.Path))
		if f.Uid != 0 || f.Gid != 0 || f.Mode != 0o644 {
			fmt.Fprintf(b, "a:%d:%d:%o\n", f.Uid, f.Gid, f.Mode)
		}
		if sum, err := hex.DecodeString(f.SHA1); err == nil && len(sum) == 20 {
			fmt.Fprintf(b, "Z:%s\n", Checksum(sum))
		}
	}
	b.WriteByte('\n')
}

// scriptsTar is apk's scripts.tar: each package's scripts as NAME-VERSION.CHECKSUM.SCRIPT.
func scriptsTar(pkgs []*Package) ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, p := range pkgs {
		for _, name := range slices.Sorted(maps.Keys(p.Scripts)) {
			data := p.Scripts[name]
			h := &tar.Header{
				Name: fmt.Sprintf("%s-%s.%s%s", p.Name, p.Version, p.Checksum, name),
				Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg,
				ModTime: unixTime(p.BuildDate),
			}
			if err := tw.WriteHeader(h); err != nil {
				return nil, err
			}
			if _, err := tw.Write(data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func unixTime(s int64) time.Time { return time.Unix(s, 0).UTC() }

// LinkInit makes /sbin/init a link to /usr/sbin/init, where the Kata agent layer puts the agent
// when it is init (which Alpine's manifests always ask for). Alpine's /sbin is a directory, not
// merged-/usr's link, so without it /sbin/init would be busybox's or nothing. A /sbin/init a
// package laid down is replaced, as osbuilder's AGENT_INIT=yes does.
func LinkInit(root string) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.MkdirAll("sbin", 0o755); err != nil {
		return fmt.Errorf("/sbin/init: %w", err)
	}
	if fi, err := r.Lstat("sbin/init"); err == nil {
		if fi.IsDir() {
			return errors.New("/sbin/init: a directory where init goes")
		}
		if err := r.Remove("sbin/init"); err != nil {
			return fmt.Errorf("/sbin/init: %w", err)
		}
	}
	if err := r.Symlink("../usr/sbin/init", "sbin/init"); err != nil {
		return fmt.Errorf("/sbin/init: %w", err)
	}
	return nil
}
