package engine

// Outputs the build function makes as references of their own (disk images): BuildKit's
// exporters export one result, so the build function adds each such output to its result under
// [RefKey] and the engine, still inside the solve, reads the reference's files into temporary
// files next to the destination, takes the reference out of the result and, once every export
// succeeded, puts the files in place.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"

	gateway "github.com/moby/buildkit/frontend/gateway/client"
)

// RefFile is the file of a reference output that goes to its destination; every other regular
// file at the reference's root goes beside it, as DEST.NAME (a disk image's verity-params).
const RefFile = "image"

// refOutputTypes are made by the build function as references.
var refOutputTypes = []string{"disk"}

// RefKey is the result key of the reference of output n (a decimal index into the outputs).
func RefKey(n string) string { return "rootfsc.output." + n }

// readChunk is how much one ReadFile call of the gateway asks for.
const readChunk = 4 << 20

// refFiles is what one reference output wrote: temporary files and their destinations.
type refFiles struct {
	out   Output
	temps []*Temp
	dests []string
}

// readRef reads the reference of output o into temporary files next to its destination.
func readRef(ctx context.Context, ref gateway.Reference, o Output) (*refFiles, error) {
	rf := &refFiles{out: o}
	entries, err := ref.ReadDir(ctx, gateway.ReadDirRequest{Path: "/"})
	if err != nil {
		return rf, fmt.Errorf("reading the result: %w", err)
	}
	found := false
	for _, e := range entries {
		if !fs.FileMode(e.Mode).IsRegular() || path.Base(e.Path) != e.Path {
			continue
		}
		dest := o.Dest
		if e.Path != RefFile {
			dest = o.Dest + "." + e.Path
		} else {
			found = true
		}
		t, f, err := tempFile(dest)
		if err != nil {
			return rf, err
		}
		rf.temps, rf.dests = append(rf.temps, t), append(rf.dests, dest)
		err = copyRef(ctx, ref, e.Path, e.Size, f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return rf, fmt.Errorf("writing %s: %w", t.Path, err)
		}
	}
	if !found {
		return rf, errors.New("the build made no " + RefFile)
	}
	return rf, nil
}

// copyRef copies a file of ref into f in chunks, leaving holes where a chunk is all zeros (a
// disk image is mostly free space).
func copyRef(ctx context.Context, ref gateway.Reference, name string, size int64, f *os.File) error {
	if err := f.Truncate(size); err != nil {
		return err
	}
	zero := make([]byte, readChunk)
	for off := int64(0); off < size; off += readChunk {
		n := min(readChunk, size-off)
		b, err := ref.ReadFile(ctx, gateway.ReadRequest{Filename: name, Range: &gateway.FileRange{Offset: int(off), Length: int(n)}})
		if err != nil {
			return err
		}
		if int64(len(b)) != n {
			return fmt.Errorf("%s: read %d bytes at %d, want %d", name, len(b), off, n)
		}
		if bytes.Equal(b, zero[:n]) {
			continue
		}
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
	}
	return f.Sync()
}

// commit puts every file in place.
func (rf *refFiles) commit(o DestOpts) error {
	for i, t := range rf.temps {
		if err := commitFile(t, rf.dests[i], o); err != nil {
			return err
		}
	}
	return nil
}

func (rf *refFiles) remove() {
	for _, t := range rf.temps {
		t.Remove()
	}
}
