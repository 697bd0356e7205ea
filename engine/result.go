package engine

// A dir output that already holds this build's result is not exported again.
//
// The caller gives [Opts.Fingerprint]: a digest of everything the result depends on (the
// marshalled definition and the content of every local input the client sends, since a local's
// content is not in the definition). When a dir output is committed, its root carries the
// extended attribute trusted.rootfsc.result (user.rootfsc.result when not root) holding the
// output's key — the fingerprint with the output's type and exporter options — and a stamp of
// the tree: a digest of every entry's path, inode, type, mode, owner, size, link count, mtime and
// ctime. The kernel sets ctime on every change to an inode (content, mode, owner, xattrs, links)
// and nobody can set it back, so a tree edited by hand after the build no longer matches its
// stamp and is exported again; the root's own ctime is left out, since marking the root and
// renaming it into place change it.
//
// A skipped output needs no check step either: the destination was committed only after a solve
// of the same definition and inputs whose check passed, and the check is a step of that graph,
// which BuildKit would answer from its cache.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

const (
	resultRoot = "trusted.rootfsc.result"
	resultUser = "user.rootfsc.result"
	// resultVersion starts the attribute's value; a new stamp format gets a new version, so an
	// older destination is exported again rather than misread.
	resultVersion = "v1"
)

func resultName() string {
	if os.Geteuid() == 0 {
		return resultRoot
	}
	return resultUser
}

// outputKey is the fingerprint of the result as one output writes it: with the output's type and
// exporter options. "" when the build gave no fingerprint.
func outputKey(fingerprint string, o Output) string {
	if fingerprint == "" {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "rootfsc output %s\nfingerprint %s\n", o.Type, fingerprint)
	for _, k := range slices.Sorted(maps.Keys(o.Attrs)) {
		fmt.Fprintf(h, "attr %q=%q\n", k, o.Attrs[k])
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// treeStamp digests the metadata of every entry of the tree at root, not following links: what
// changes when anything in the tree is changed, added or removed.
func treeStamp(root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		rel, _ := filepath.Rel(root, p)
		ctime := st.Ctim.Nano()
		if rel == "." {
			ctime = 0 // marking and renaming the root change it
		}
		fmt.Fprintf(h, "%q %d %o %d:%d %d %d %d %d\n", rel, st.Ino, st.Mode, st.Uid, st.Gid, st.Size, st.Nlink, st.Mtim.Nano(), ctime)
		return nil
	})
	if err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// recordResult stamps the tree at root and records it with key on root.
func recordResult(root, key string) error {
	stamp, err := treeStamp(root)
	if err != nil {
		return fmt.Errorf("stamping the tree: %w", err)
	}
	v := resultVersion + " " + key + " " + stamp
	if err := unix.Lsetxattr(root, resultName(), []byte(v), 0); err != nil {
		return fmt.Errorf("recording the result on %s (%s): %w", root, resultName(), err)
	}
	return nil
}

// Why a destination does not hold the result of a key (see [upToDate]).
var (
	errNoResult     = errors.New("it records no result")
	errOtherResult  = errors.New("it holds another result")
	errTreeModified = errors.New("it was changed after it was written")
)

// upToDate reports, as nil, that dest is a finished dir output of rootfsc holding the result of
// key and untouched since; otherwise why not.
func upToDate(dest, key string) error {
	if key == "" {
		return errNoResult
	}
	if v, ok := marked(dest); !ok || v != markOutput {
		return errNoResult
	}
	buf := make([]byte, 256)
	var n int
	var err error
	for _, name := range []string{resultRoot, resultUser} {
		if n, err = unix.Lgetxattr(dest, name, buf); err == nil {
			break
		}
	}
	if err != nil {
		return errNoResult
	}
	f := strings.Fields(string(buf[:n]))
	if len(f) != 3 || f[0] != resultVersion {
		return errNoResult
	}
	if f[1] != key {
		return errOtherResult
	}
	stamp, err := treeStamp(dest)
	if err != nil {
		return fmt.Errorf("stamping %s: %w", dest, err)
	}
	if stamp != f[2] {
		return errTreeModified
	}
	return nil
}
