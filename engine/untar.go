package engine

import (
	"context"
	"io"

	"github.com/rootfsc/rootfsc/internal/rootfs"
)

// unpackTemp unpacks the tar stream r into a new temporary tree next to dest (see [tempDir]),
// with owners, modes, xattrs and device nodes as the stream has them; on error nothing is
// left behind. The caller commits it with [commitDir]. When dest is a finished output of
// rootfsc, its files that the stream holds unchanged (header and bytes) are hard-linked into the
// new tree instead of written again: the exchange then removes only their old names.
func unpackTemp(r io.Reader, dest string) (*Temp, rootfs.UntarStats, error) {
	var stats rootfs.UntarStats
	t, err := tempDir(dest)
	if err != nil {
		return nil, stats, err
	}
	// Cancelling the solve reaches the unpack through the pipe solveDir closes.
	opts := rootfs.UntarOpts{ParentLinks: rootfs.Refuse, Chown: true, Xattrs: true, RootEntry: true, AccessTimes: true, Stats: &stats}
	if v, ok := marked(dest); ok && v == markOutput {
		opts.Reuse = dest
	}
	if err := rootfs.Untar(context.Background(), r, t.Path, opts); err != nil {
		t.Remove()
		return nil, stats, err
	}
	return t, stats, nil
}
