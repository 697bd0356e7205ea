package unpack

import (
	"compress/gzip"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
)

// Reader splits an apk file or an APKINDEX.tar.gz into its gzip members and hashes the
// compressed bytes as they are consumed: an apk's signature covers the SHA-1 of the control
// member, its control names the SHA-256 of the data member, and an index's signature covers the
// SHA-1 of everything after the signature member. The gzip decoder reads through ReadByte, so
// it never consumes a byte past the end of its member.
type Reader struct {
	r              io.Reader
	buf            []byte
	pos, end, done int // done: bytes of buf already hashed
	h1, h256       hash.Hash
	err            error
	gz             *gzip.Reader
	n              int64 // bytes consumed in all
}

// NewReader returns a Reader over r.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: r, buf: make([]byte, 64<<10), h1: sha1.New(), h256: sha256.New()}
}

func (r *Reader) hashConsumed() {
	if r.pos > r.done {
		r.h1.Write(r.buf[r.done:r.pos])
		r.h256.Write(r.buf[r.done:r.pos])
		r.done = r.pos
	}
}

func (r *Reader) fill() error {
	r.hashConsumed()
	for r.err == nil {
		n, err := r.r.Read(r.buf)
		r.pos, r.end, r.done, r.err = 0, n, 0, err
		if n > 0 {
			return nil
		}
	}
	return r.err
}

// ReadByte implements io.ByteReader for the gzip decoder.
func (r *Reader) ReadByte() (byte, error) {
	if r.pos == r.end {
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	b := r.buf[r.pos]
	r.pos++
	r.n++
	return b, nil
}

// Read implements io.Reader for the gzip decoder.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.pos == r.end {
		if err := r.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.pos:r.end])
	r.pos += n
	r.n += int64(n)
	return n, nil
}

// Offset is the number of compressed bytes consumed so far.
func (r *Reader) Offset() int64 { return r.n }

// ResetHash starts the hashes afresh at the current position.
func (r *Reader) ResetHash() {
	r.hashConsumed()
	r.h1.Reset()
	r.h256.Reset()
}

// Sums returns the SHA-1 and SHA-256 of the compressed bytes consumed since the last
// [Reader.ResetHash].
func (r *Reader) Sums() (sha1sum, sha256sum []byte) {
	r.hashConsumed()
	return r.h1.Sum(nil), r.h256.Sum(nil)
}

// ErrNoMember is returned by [Reader.Next] at the end of the input.
var ErrNoMember = errors.New("no more gzip members")

// Next returns the decompressed bytes of the next gzip member; it is done when they have been
// read to io.EOF. At the end of the input it returns [ErrNoMember].
func (r *Reader) Next() (io.Reader, error) {
	if r.pos == r.end {
		if err := r.fill(); err == io.EOF {
			return nil, ErrNoMember
		} else if err != nil {
			return nil, err
		}
	}
	var err error
	if r.gz == nil {
		r.gz, err = gzip.NewReader(r)
	} else {
		err = r.gz.Reset(r)
	}
	if err != nil {
		return nil, err
	}
	r.gz.Multistream(false)
	return r.gz, nil
}
