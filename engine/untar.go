package engine

import (
	"context"
	"io"

	"github.com/rootfsc/rootfsc/internal/rootfs"
)

// unpackTemp unpacks the tar stream r into a new temporary tree next to dest (see [tempDir]),
// with owners, modes, xattrs and device nodes as the stream has them; on error nothing is
// left behind. The caller commits it with [commitDir].
func unpackTemp(r io.Reader, dest string) (*Temp, error) {
	t, err := tempDir(dest)
	if err != nil {
		return nil, err
	}
	// Cancelling the solve reaches the unpack through the pipe solveDir closes.
	opts := rootfs.UntarOpts{ParentLinks: rootfs.Refuse, Chown: true, Xattrs: true, RootEntry: true, AccessTimes: true}
	if err := rootfs.Untar(context.Background(), r, t.Path, opts); err != nil {
		t.Remove()
		return nil, err
	}
	return t, nil
}
