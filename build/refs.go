package build

// A file system over a solved reference of the gateway: how the frontend reads the manifest from
// the `dockerfile` local and inputs from the `context` local, as the Dockerfile frontend does.

import (
	"context"
	"io"
	"io/fs"
	"path"
	"strings"

	gwclient "github.com/moby/buildkit/frontend/gateway/client"
	"github.com/tonistiigi/fsutil"
)

// refFS is an [fs.FS] reading a gateway reference.
type refFS struct {
	ctx context.Context
	ref gwclient.Reference
}

var (
	_ fs.StatFS     = refFS{}
	_ fs.ReadFileFS = refFS{}
	_ fs.ReadDirFS  = refFS{}
)

func (r refFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	st, err := r.ref.StatFile(r.ctx, gwclient.StatRequest{Path: name})
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: notExist(err)}
	}
	return &fsutil.StatInfo{Stat: st}, nil
}

func (r refFS) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrInvalid}
	}
	b, err := r.ref.ReadFile(r.ctx, gwclient.ReadRequest{Filename: name})
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: notExist(err)}
	}
	return b, nil
}

func (r refFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	sts, err := r.ref.ReadDir(r.ctx, gwclient.ReadDirRequest{Path: name})
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: notExist(err)}
	}
	out := make([]fs.DirEntry, 0, len(sts))
	for _, st := range sts {
		out = append(out, fs.FileInfoToDirEntry(&fsutil.StatInfo{Stat: st}))
	}
	return out, nil
}

// Open returns a file read in ranges, so a check of an archive's first bytes does not transfer
// a whole agent binary.
func (r refFS) Open(name string) (fs.File, error) {
	fi, err := r.Stat(name)
	if err != nil {
		return nil, err
	}
	return &refFile{fs: r, name: name, fi: fi}, nil
}

type refFile struct {
	fs   refFS
	name string
	fi   fs.FileInfo
	off  int64
}

func (f *refFile) Stat() (fs.FileInfo, error) { return f.fi, nil }
func (f *refFile) Close() error               { return nil }

func (f *refFile) Read(p []byte) (int, error) {
	if f.fi.IsDir() {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: fs.ErrInvalid}
	}
	if f.off >= f.fi.Size() {
		return 0, io.EOF
	}
	b, err := f.fs.ref.ReadFile(f.fs.ctx, gwclient.ReadRequest{Filename: f.name,
		Range: &gwclient.FileRange{Offset: int(f.off), Length: len(p)}})
	if err != nil {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: err}
	}
	if len(b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b)
	f.off += int64(n)
	return n, nil
}

// notExist maps the gateway's "no such file" (a gRPC error with the OS's text) to
// [fs.ErrNotExist], so that callers can tell a missing lock from a broken one.
func notExist(err error) error {
	if strings.Contains(err.Error(), "no such file or directory") || strings.Contains(err.Error(), "not found") {
		return fs.ErrNotExist
	}
	return err
}

// cleanPaths are the include patterns for paths: each path, and nothing above it.
func cleanPaths(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, path.Clean(p))
	}
	return out
}
