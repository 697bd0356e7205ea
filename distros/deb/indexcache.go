package deb

// The parsed index cache: the fields of [pkg] of one verified Packages index, so that a resolve
// whose indexes did not change neither decompresses nor parses 50 MB of text.
//
// An entry is cacheDir/parsed/<sha256>-<arch>, where sha256 is the hash the signed Release lists
// for the index it was parsed from (the decompressed Packages when the Release lists it, else the
// compressed file). Its content:
//
//	magic, then length-prefixed (uvarint) strings and numbers:
//	  the index's sha256, the architecture, the number of packages,
//	  per package: Name Version Architecture Filename SHA256 Priority Depends Pre-Depends
//	               Conflicts Breaks Provides, Size, Essential (0 or 1)
//	the sha256 of everything before it (32 bytes)
//
// The cache is input from disk: an entry is used only when it is a regular file in a folder that
// no one but this user can write to, its checksum holds, it names the very index and architecture
// asked for, and it decodes to the end. Anything else is a [cacheError]; the resolver then parses
// the index again (from the verified compressed file, cached or downloaded) and replaces the entry.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"
)

const parsedMagic = "rootfsc parsed Packages index 1\n"

// parsedPath is the entry of the index with hash key for arch, "" when arch cannot be a file
// name (the schema allows none such; this keeps a path out of the cache's folder regardless).
func parsedPath(cacheDir, key, arch string) string {
	if cacheDir == "" || !isSHA256(key) || !plainName(arch) {
		return ""
	}
	return filepath.Join(cacheDir, "parsed", key+"-"+arch)
}

func plainName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// encodeParsed writes the content of the entry for pkgs, parsed from the index with hash key, to w.
func encodeParsed(w io.Writer, key, arch string, pkgs []*pkg) error {
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(w, h), 256<<10)
	var num [binary.MaxVarintLen64]byte
	uvarint := func(v uint64) { bw.Write(binary.AppendUvarint(num[:0], v)) }
	str := func(s string) {
		uvarint(uint64(len(s)))
		bw.WriteString(s)
	}
	bw.WriteString(parsedMagic)
	str(key)
	str(arch)
	uvarint(uint64(len(pkgs)))
	for _, p := range pkgs {
		for _, s := range []string{p.Name, p.Version, p.Architecture, p.Filename, p.SHA256, p.Priority,
			p.Depends, p.PreDepends, p.Conflicts, p.Breaks, p.Provides} {
			str(s)
		}
		uvarint(uint64(p.Size))
		e := byte(0)
		if p.Essential {
			e = 1
		}
		bw.WriteByte(e)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err := w.Write(h.Sum(nil))
	return err
}

// cacheError is an entry of the parsed index cache that cannot be used, and why.
type cacheError struct {
	path string
	msg  string
}

func (e *cacheError) Error() string { return e.path + ": " + e.msg }

// errTruncated ends the decoding of an entry that stops in the middle of a field.
var errTruncated = errors.New("truncated")

// decodeParsed decodes an entry's content b, which must have been parsed from the index with hash
// key for arch; the packages get suite.
func decodeParsed(b []byte, key, arch, suite string) ([]*pkg, error) {
	if len(b) < len(parsedMagic)+sha256.Size || string(b[:len(parsedMagic)]) != parsedMagic {
		return nil, errors.New("not a parsed index of this rootfsc version")
	}
	body, trailer := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	if sum := sha256.Sum256(body); !bytes.Equal(sum[:], trailer) {
		return nil, errors.New("checksum mismatch: the entry was changed after it was written")
	}
	// Every field is a substring of one string over b, which nothing writes to after this: the
	// packages take no memory of their own but their structs, and the entry is not copied.
	s := unsafe.String(unsafe.SliceData(body[len(parsedMagic):]), len(body)-len(parsedMagic))
	off := 0
	num := func() (uint64, error) { // binary.Uvarint, on a string
		var v uint64
		for i := 0; i < binary.MaxVarintLen64; i++ {
			if off >= len(s) {
				return 0, errTruncated
			}
			c := s[off]
			off++
			if c < 0x80 {
				if i == binary.MaxVarintLen64-1 && c > 1 {
					return 0, errTruncated
				}
				return v | uint64(c)<<(7*i), nil
			}
			v |= uint64(c&0x7f) << (7 * i)
		}
		return 0, errTruncated
	}
	str := func() (string, error) {
		n, err := num()
		if err != nil {
			return "", err
		}
		if n > uint64(len(s)-off) {
			return "", errTruncated
		}
		v := s[off : off+int(n)]
		off += int(n)
		return v, nil
	}
	k, err := str()
	if err != nil {
		return nil, err
	}
	a, err := str()
	if err != nil {
		return nil, err
	}
	if k != key || a != arch {
		return nil, fmt.Errorf("made from index %s for %s, not from %s for %s", k, a, key, arch)
	}
	count, err := num()
	if err != nil {
		return nil, err
	}
	if count > uint64(len(s)) { // every package takes at least one byte
		return nil, errTruncated
	}
	ps := make([]pkg, count)
	out := make([]*pkg, count)
	for i := range ps {
		p := &ps[i]
		p.Suite = suite
		for _, f := range []*string{&p.Name, &p.Version, &p.Architecture, &p.Filename, &p.SHA256, &p.Priority,
			&p.Depends, &p.PreDepends, &p.Conflicts, &p.Breaks, &p.Provides} {
			if *f, err = str(); err != nil {
				return nil, err
			}
		}
		size, err := num()
		if err != nil {
			return nil, err
		}
		if size > 1<<62 {
			return nil, fmt.Errorf("package %s: bad Size %d", p.Name, size)
		}
		p.Size = int64(size)
		if off >= len(s) || s[off] > 1 {
			return nil, errTruncated
		}
		p.Essential = s[off] == 1
		off++
		out[i] = p
	}
	if off != len(s) {
		return nil, fmt.Errorf("%d bytes after the last package", len(s)-off)
	}
	return out, nil
}

// readParsed returns the entry at path, or a [cacheError] when there is one that cannot be used;
// (nil, nil) when there is none.
func readParsed(path, key, arch, suite string) ([]*pkg, error) {
	if err := privateDir(filepath.Dir(path)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, &cacheError{filepath.Dir(path), err.Error()}
	}
	// The checks are of the file opened (not followed if a symlink), so that it cannot be
	// swapped between them and the read.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if errors.Is(err, syscall.ELOOP) {
		err = errors.New("not a regular file (a symbolic link)")
	}
	if err != nil {
		return nil, &cacheError{path, err.Error()}
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, &cacheError{path, err.Error()}
	}
	if err := private(fi); err != nil {
		return nil, &cacheError{path, err.Error()}
	}
	if fi.Size() > maxIndexSize {
		return nil, &cacheError{path, fmt.Sprintf("%d bytes, more than an index may have", fi.Size())}
	}
	b := make([]byte, fi.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, &cacheError{path, err.Error()}
	}
	pkgs, err := decodeParsed(b, key, arch, suite)
	if err != nil {
		return nil, &cacheError{path, err.Error()}
	}
	return pkgs, nil
}

// writeParsed writes the entry for pkgs atomically, making its folder private to this user.
func writeParsed(path, key, arch string, pkgs []*pkg) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := privateDir(dir); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := encodeParsed(f, key, arch, pkgs); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// privateDir checks that the folder of the parsed entries is a folder only this user can write to.
func privateDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return errors.New("not a folder")
	}
	return private(fi)
}

// private checks that fi (a folder or a regular file) is this user's and that no one else may write to it.
func private(fi fs.FileInfo) error {
	if !fi.IsDir() && !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("owned by uid %d, not by this user (uid %d)", st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("writable by others (mode %#o)", fi.Mode().Perm())
	}
	return nil
}
