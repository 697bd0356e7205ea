package engine

// Where outputs may be written, and how they are put in place.
//
// rootfsc runs as root and a destination may come from anyone's command line, so an output
// only replaces what rootfsc wrote before. Each output rootfsc writes carries an extended
// attribute, trusted.rootfsc.output (user.rootfsc.output when not root), on the output itself:
// the output directory's root or the output file. An xattr rather than a marker file because
// it adds no file to the rootfs and travels with the inode, so a rootfs moved away takes its
// mark along and a folder put in its place is not mistaken for it (a sibling marker would
// vouch for whatever sits at that name); trusted.* because only root can set it, so an
// unprivileged user cannot make root's rootfsc believe that a folder is its output.
//
// A temporary output lives next to its destination, named DEST.tmp-XXXX, marked and locked
// (flock) while its run writes it. A directory is built inside a 0700 wrapper, so nobody else
// reaches the half-built tree (setuid binaries included) before it is renamed into place; it
// replaces the previous output with one atomic exchange. A run killed before it commits
// leaves its temporary behind; the next run removes the ones that are marked and not locked,
// and nothing whose name merely looks like one.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// DestOpts says what an output's destination may replace.
type DestOpts struct {
	// Dir says the output is a directory (else a file).
	Dir bool
	// Force replaces what rootfsc did not write, and folders holding the working or the state
	// directory. Nothing replaces /.
	Force bool
	// StateDir is the embedded daemon's state directory, which an output never replaces
	// without Force ("" for the default, see [StateDir]).
	StateDir string
}

// DestError is a destination that checkDest refuses.
type DestError struct {
	Dest   string
	Reason string
}

func (e *DestError) Error() string {
	return fmt.Sprintf("refusing to replace %s: %s", e.Dest, e.Reason)
}

const (
	markRoot = "trusted.rootfsc.output"
	markUser = "user.rootfsc.output"
	// The values: a finished output, and a temporary one.
	markOutput = "output"
	markTemp   = "tmp"
)

// markName is the xattr this process marks with: trusted.* needs CAP_SYS_ADMIN.
func markName() string {
	if os.Geteuid() == 0 {
		return markRoot
	}
	return markUser
}

// marked reports whether path (not followed) carries rootfsc's mark, and its value.
func marked(path string) (string, bool) {
	buf := make([]byte, 16)
	for _, name := range []string{markRoot, markUser} {
		if n, err := unix.Lgetxattr(path, name, buf); err == nil {
			return string(buf[:n]), true
		}
	}
	return "", false
}

func mark(path, value string) error {
	if err := unix.Lsetxattr(path, markName(), []byte(value), 0); err != nil {
		return fmt.Errorf("marking %s as rootfsc's output (%s): %w", path, markName(), err)
	}
	return nil
}

// checkDest refuses a destination that an output must not replace: /; without o.Force, a
// folder that holds the working directory or the state directory, and anything existing that
// rootfsc did not write (a file output never replaces a directory).
func checkDest(dest string, o DestOpts) error {
	abs, err := resolved(dest)
	if err != nil {
		return fmt.Errorf("output destination %s: %w", dest, err)
	}
	if abs == "/" {
		return &DestError{dest, "it is /"}
	}
	fi, err := os.Lstat(abs)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("output destination %s: %w", dest, err)
	}
	if fi != nil && fi.IsDir() && !o.Dir {
		return &DestError{dest, "it is a directory and the output is a file"}
	}
	if o.Force {
		return nil
	}
	if cwd, err := os.Getwd(); err == nil {
		if c, err := resolved(cwd); err == nil && within(c, abs) {
			return &DestError{dest, "it holds the working directory " + cwd + " (--force overrides)"}
		}
	}
	state := StateDir(o.StateDir)
	if s, err := resolved(state); err == nil && within(s, abs) {
		return &DestError{dest, "it holds the state directory " + state + " (--force overrides)"}
	}
	if fi != nil {
		if _, ok := marked(abs); !ok {
			return &DestError{dest, "it exists and rootfsc did not write it (no " + markRoot + " mark); remove it or use --force"}
		}
	}
	return nil
}

// resolved is path made absolute with the symbolic links of its parent resolved (the last
// element, which an output replaces, is not followed).
func resolved(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if abs == "/" {
		return abs, nil
	}
	parent, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if errors.Is(err, os.ErrNotExist) {
		return abs, nil // made later, by MkdirAll
	}
	if err != nil {
		return "", err
	}
	return filepath.Join(parent, filepath.Base(abs)), nil
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// Temp is a temporary output next to its destination, marked and locked while in use.
type Temp struct {
	// Path is where the output is written: the tree's root (tempDir) or the file (tempFile).
	Path string
	top  string // DEST.tmp-XXXX: the 0700 wrapper, or the file itself
	lock *os.File
}

// Remove deletes the temporary output; it is a no-op once committed.
func (t *Temp) Remove() {
	if t == nil || t.top == "" {
		return
	}
	os.RemoveAll(t.top)
	t.release()
}

func (t *Temp) release() {
	if t.lock != nil {
		t.lock.Close()
		t.lock = nil
	}
	t.top = ""
}

// tempDir makes DEST.tmp-XXXX (0700, marked, locked) next to dest, with an empty tree root
// (0755) inside it, after removing the stale temporaries of killed runs.
func tempDir(dest string) (*Temp, error) {
	parent, base := filepath.Split(filepath.Clean(dest))
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	removeStale(parent, base)
	top, err := os.MkdirTemp(parent, base+".tmp-")
	if err != nil {
		return nil, err
	}
	t := &Temp{Path: filepath.Join(top, "root"), top: top}
	if err := t.setup(markTemp); err != nil {
		t.Remove()
		return nil, err
	}
	// The tree's root gets the stream's "./" entry when there is one; BuildKit's tar exporter
	// writes none, so it starts as a rootfs's / is. The wrapper keeps it private meanwhile.
	if err := os.Mkdir(t.Path, 0o755); err != nil {
		t.Remove()
		return nil, err
	}
	if err := os.Chmod(t.Path, 0o755); err != nil { // whatever the umask
		t.Remove()
		return nil, err
	}
	return t, nil
}

// tempFile creates DEST.tmp-XXXX (0600, marked, locked) next to dest, after removing the stale
// temporaries of killed runs, and returns it open for writing.
func tempFile(dest string) (*Temp, *os.File, error) {
	parent, base := filepath.Split(filepath.Clean(dest))
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, nil, err
	}
	removeStale(parent, base)
	f, err := os.CreateTemp(parent, base+".tmp-*")
	if err != nil {
		return nil, nil, err
	}
	t := &Temp{Path: f.Name(), top: f.Name()}
	if err := t.setup(markTemp); err != nil {
		f.Close()
		t.Remove()
		return nil, nil, err
	}
	return t, f, nil
}

// setup marks t's top and takes the lock that tells removeStale it is in use.
func (t *Temp) setup(value string) error {
	if err := mark(t.top, value); err != nil {
		return err
	}
	f, err := os.Open(t.top)
	if err != nil {
		return err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return fmt.Errorf("locking %s: %w", t.top, err)
	}
	t.lock = f
	return nil
}

// removeStale removes the temporaries of dest (parent/base) that killed runs left: named
// base.tmp-*, marked as rootfsc's, and not locked by a running one.
func removeStale(parent, base string) {
	ents, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), base+".tmp-") {
			continue
		}
		p := filepath.Join(parent, e.Name())
		if _, ok := marked(p); !ok {
			continue // not ours, whatever its name says
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.RemoveAll(p)
		}
		f.Close()
	}
}

// commitDir puts the tree of t in place at dest, checked again by checkDest with o: the tree is
// marked, exchanged atomically with a previous output (renamed when there is none), and the
// previous output removed; then the result key is recorded on it with the tree's stamp (see
// [recordResult]), unless key is "". On error dest is as it was and t is still to be removed.
func commitDir(t *Temp, dest string, o DestOpts, key string) error {
	o.Dir = true
	if err := checkDest(dest, o); err != nil {
		return err
	}
	if err := mark(t.Path, markOutput); err != nil {
		return err
	}
	err := unix.Renameat2(unix.AT_FDCWD, t.Path, unix.AT_FDCWD, dest, unix.RENAME_EXCHANGE)
	switch {
	case errors.Is(err, unix.ENOENT):
		if err := os.Rename(t.Path, dest); err != nil {
			return err
		}
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS):
		// No exchange on this filesystem: the previous output goes into the marked wrapper
		// first, so a run killed in between leaves it where the next run removes it.
		old := filepath.Join(t.top, "old")
		if err := os.Rename(dest, old); err != nil {
			return fmt.Errorf("replacing %s: %w", dest, err)
		}
		if err := os.Rename(t.Path, dest); err != nil {
			os.Rename(old, dest)
			return fmt.Errorf("replacing %s: %w", dest, err)
		}
	case err != nil:
		return fmt.Errorf("replacing %s: %w", dest, err)
	}
	// t.Path now holds the previous output, if there was one.
	t.Remove()
	// Stamped only now: removing the previous output changes the link counts (and ctimes) of the
	// files the new tree took from it by hard link. The output is in place whatever happens here;
	// a result not recorded only means that the next build exports again.
	if key != "" {
		recordResult(dest, key)
	}
	return nil
}

// commitFile renames the file of t to dest (mode 0644), checked again by checkDest with o. On
// error dest is as it was and t is still to be removed.
func commitFile(t *Temp, dest string, o DestOpts) error {
	o.Dir = false
	if err := checkDest(dest, o); err != nil {
		return err
	}
	if err := mark(t.Path, markOutput); err != nil {
		return err
	}
	if err := os.Chmod(t.Path, 0o644); err != nil {
		return err
	}
	if err := os.Rename(t.Path, dest); err != nil {
		return err
	}
	t.release()
	return nil
}
