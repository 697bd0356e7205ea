package lock

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// CurrentVersion is the lockfile format version written by [Lock.Write].
const CurrentVersion = 1

// maxSize bounds the lockfiles [Read] accepts; a lock of a Debian rootfs is about 50 KB.
const maxSize = 16 << 20

// ErrStale is returned (wrapped, with a reason) by [Lock.Verify] when a lock no longer matches its inputs.
var ErrStale = errors.New("lock is stale")

// Lock is a resolved, pinned package set for one distro release and architecture.
type Lock struct {
	Version         int       `json:"version"`
	InputDigest     string    `json:"inputDigest"`
	Distro          string    `json:"distro"`
	Release         string    `json:"release"`
	Arch            string    `json:"arch"`
	SourceDateEpoch int64     `json:"sourceDateEpoch"`
	Suites          []Suite   `json:"suites"`
	Packages        []Package `json:"packages"`
	// Kernel is the package whose modules go under /lib/modules, when the manifest asks for one.
	// It is not among Packages: it is never installed, only its modules are extracted.
	Kernel *Kernel `json:"kernel,omitempty"`
	// Tools are the packages of the tools rootfs disk images are made with (mke2fs,
	// mkfs.erofs, veritysetup and what they depend on), from the same suites. They are never
	// part of the rootfs.
	Tools []Package `json:"tools,omitempty"`
}

// Suite records the signed Release file a lock was resolved against.
type Suite struct {
	Name string `json:"name"`
	// Archive is the path component of the mirror the suite lives under
	// ("debian", "debian-security"): a key, not a URL.
	Archive       string `json:"archive"`
	Date          string `json:"date"` // RFC3339 UTC
	ReleaseSHA256 string `json:"releaseSHA256"`
}

// Package is one pinned binary package.
type Package struct {
	Name         string `json:"name"`
	Version      string `json:"version"`
	Architecture string `json:"architecture"`
	Filename     string `json:"filename"`
	Size         int64  `json:"size"`
	SHA256       string `json:"sha256"`
	Suite        string `json:"suite"`
	// Essential is true for Essential: yes packages and what they (pre-)depend on,
	// which are extracted in stage 1.
	Essential bool `json:"essential"`
	// Checksum is the apk family's index checksum (C:, "Q1" and the base64 SHA-1 of the
	// package's control member), which the signed index vouches for and the helper checks.
	Checksum string `json:"checksum,omitempty"`
}

// Kernel is the pinned kernel package that provides the guest's modules. The embedded [Package]
// is the package that carries the modules (a meta package like linux-image-amd64 already followed).
type Kernel struct {
	Package
	// Release is the kernel release, the name of the /lib/modules/<Release> directory
	// (uname -r), like "6.1.0-28-amd64".
	Release string `json:"release"`
	// Requested is the kernel package the manifest names, like "linux-image-amd64"; it is how a
	// changed request is told apart from a meta package that now points at a newer kernel.
	Requested string `json:"requested"`
}

// Path returns the lockfile path for a manifest: "<manifest>.lock.json" next to it.
func Path(manifestPath string) string {
	return manifestPath + ".lock.json"
}

// Sort orders suites and packages by name, as they are written.
func (l *Lock) Sort() {
	sort.SliceStable(l.Suites, func(i, j int) bool { return l.Suites[i].Name < l.Suites[j].Name })
	sort.SliceStable(l.Packages, func(i, j int) bool { return l.Packages[i].Name < l.Packages[j].Name })
	sort.SliceStable(l.Tools, func(i, j int) bool { return l.Tools[i].Name < l.Tools[j].Name })
}

// Marshal returns the canonical encoding: sorted entries, two-space JSON and a trailing newline.
func (l *Lock) Marshal() ([]byte, error) {
	c := *l
	c.Suites = append([]Suite(nil), l.Suites...)
	c.Packages = append([]Package(nil), l.Packages...)
	c.Tools = append([]Package(nil), l.Tools...)
	if c.Version == 0 {
		c.Version = CurrentVersion
	}
	if c.Suites == nil {
		c.Suites = []Suite{}
	}
	if c.Packages == nil {
		c.Packages = []Package{}
	}
	c.Sort()
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Write writes the lock to path atomically (temporary file and rename).
func (l *Lock) Write(path string) error {
	b, err := l.Marshal()
	if err != nil {
		return fmt.Errorf("encode lock %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write lock: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write lock %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write lock %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write lock %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write lock %s: %w", path, err)
	}
	return nil
}

// Read reads and decodes the lock at path, rejecting unknown fields and versions.
func Read(path string) (*Lock, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read lock: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read lock: %w", err)
	}
	l, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("read lock %s: %w", path, err)
	}
	return l, nil
}

// Parse decodes a lock, rejecting unknown fields and versions, data after the lock's object
// and a lock larger than Read would read.
func Parse(b []byte) (*Lock, error) {
	if len(b) > maxSize {
		return nil, fmt.Errorf("larger than %d bytes", maxSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var l Lock
	if err := dec.Decode(&l); err != nil {
		return nil, err
	}
	// A second object or stray text means the file is not what Write wrote (a bad merge, say).
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the lock's JSON object")
	}
	if l.Version != CurrentVersion {
		return nil, fmt.Errorf("unsupported version %d (want %d)", l.Version, CurrentVersion)
	}
	return &l, nil
}

// Verify reports, wrapping [ErrStale], whether the lock was not built from inputs with the given digest
// or is otherwise unusable.
func (l *Lock) Verify(inputDigest string) error {
	switch {
	case l.Version != CurrentVersion:
		return fmt.Errorf("%w: version %d, want %d", ErrStale, l.Version, CurrentVersion)
	case l.InputDigest != inputDigest:
		return fmt.Errorf("%w: input digest %s, inputs now %s", ErrStale, l.InputDigest, inputDigest)
	case len(l.Packages) == 0:
		return fmt.Errorf("%w: no packages", ErrStale)
	case l.Kernel != nil && (l.Kernel.Release == "" || l.Kernel.SHA256 == ""):
		return fmt.Errorf("%w: kernel %s has no release or sha256", ErrStale, l.Kernel.Name)
	}
	return nil
}
