package apk

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/rootfsc/rootfsc/distros/apk/unpack"
)

// ErrBadSignature is wrapped by the error for an APKINDEX whose signature does not verify.
var ErrBadSignature = errors.New("bad signature")

// ErrUnknownKey is wrapped by the error for an APKINDEX signed by a key the distro definition
// does not hold.
var ErrUnknownKey = errors.New("signed by an unknown key")

// maxIndex bounds an APKINDEX.tar.gz and its text: Alpine's largest (community) is about 2 MB
// compressed and 8 MB of text.
const maxIndex = 64 << 20

// Keys are RSA public keys by the name apk knows them by ("alpine-devel@lists.alpinelinux.org-6165ee59.rsa.pub").
type Keys map[string]*rsa.PublicKey

// ParseKeys reads PEM public keys (PKIX or PKCS#1) by name.
func ParseKeys(pems map[string]string) (Keys, error) {
	keys := Keys{}
	for name, p := range pems {
		block, _ := pem.Decode([]byte(p))
		if block == nil {
			return nil, fmt.Errorf("key %s: no PEM block", name)
		}
		var pub any
		var err error
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		default:
			err = fmt.Errorf("PEM block %q", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", name, err)
		}
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("key %s: not an RSA key", name)
		}
		keys[name] = k
	}
	return keys, nil
}

// VerifyIndex checks the signature of an APKINDEX.tar.gz and returns the APKINDEX text. The
// file is the signature member (a tar holding .SIGN.RSA.KEYNAME, an RSA PKCS#1 v1.5 signature
// over the SHA-1 of the rest of the file, or .SIGN.RSA256.KEYNAME over its SHA-256) followed by
// the index member (a tar holding APKINDEX and DESCRIPTION).
func VerifyIndex(data []byte, keys Keys) ([]byte, error) {
	if len(data) > maxIndex {
		return nil, fmt.Errorf("larger than %d bytes", maxIndex)
	}
	r := unpack.NewReader(bytes.NewReader(data))
	m, err := r.Next()
	if err != nil {
		return nil, fmt.Errorf("not a signed index: %w", err)
	}
	var sigName string
	var sig []byte
	tr := tar.NewReader(io.LimitReader(m, 1<<20))
	h, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("not a signed index: signature member: %w", err)
	}
	if !strings.HasPrefix(h.Name, ".SIGN.") {
		return nil, fmt.Errorf("not a signed index: first entry is %q, not a .SIGN. file", h.Name)
	}
	sigName = h.Name
	if sig, err = io.ReadAll(io.LimitReader(tr, 64<<10)); err != nil {
		return nil, fmt.Errorf("signature member: %w", err)
	}
	// The rest of the member (the tar's padding) is bounded: a signature member that goes on
	// leaves the signed part misplaced, and so fails the check below.
	if _, err := io.Copy(io.Discard, io.LimitReader(m, 1<<20)); err != nil {
		return nil, fmt.Errorf("signature member: %w", err)
	}
	signed := data[r.Offset():]
	var hash crypto.Hash
	var digest []byte
	var keyName string
	switch {
	case strings.HasPrefix(sigName, ".SIGN.RSA256."):
		keyName, hash = strings.TrimPrefix(sigName, ".SIGN.RSA256."), crypto.SHA256
		s := sha256.Sum256(signed)
		digest = s[:]
	case strings.HasPrefix(sigName, ".SIGN.RSA."):
		keyName, hash = strings.TrimPrefix(sigName, ".SIGN.RSA."), crypto.SHA1
		s := sha1.Sum(signed)
		digest = s[:]
	default:
		return nil, fmt.Errorf("unsupported signature %s", sigName)
	}
	key, ok := keys[keyName]
	if !ok {
		known := make([]string, 0, len(keys))
		for k := range keys {
			known = append(known, k)
		}
		slices.Sort(known)
		return nil, fmt.Errorf("%w %q (the distro definition holds %s)", ErrUnknownKey, keyName, strings.Join(known, ", "))
	}
	if err := rsa.VerifyPKCS1v15(key, hash, digest, sig); err != nil {
		return nil, fmt.Errorf("%w by key %s", ErrBadSignature, keyName)
	}
	// Only the signed bytes are read from here on.
	r = unpack.NewReader(bytes.NewReader(signed))
	var text []byte
	found := false
	for {
		m, err := r.Next()
		if err == unpack.ErrNoMember {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("index member: %w", err)
		}
		tr := tar.NewReader(io.LimitReader(m, maxIndex))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("index member: %w", err)
			}
			if h.Name == "APKINDEX" && h.Typeflag == tar.TypeReg {
				if text, err = io.ReadAll(io.LimitReader(tr, maxIndex)); err != nil {
					return nil, fmt.Errorf("APKINDEX: %w", err)
				}
				found = true
			}
		}
		if _, err := io.Copy(io.Discard, io.LimitReader(m, maxIndex)); err != nil {
			return nil, fmt.Errorf("index member: %w", err)
		}
	}
	if !found {
		return nil, errors.New("no APKINDEX in the index")
	}
	return text, nil
}

// Pkg is one package of an index.
type Pkg struct {
	Name, Version, Arch                                   string
	Size, InstalledSize                                   int64
	Description, URL, License, Origin, Maintainer, Commit string
	BuildDate                                             int64
	Depends, Provides, InstallIf                          []string
	ProviderPriority                                      int
	// Checksum is C:, "Q1" and the base64 SHA-1 of the package's control member.
	Checksum string
	// Repo is the repository the package comes from ("main", "community").
	Repo string
}

// ParseIndex reads APKINDEX text: stanzas of "X:value" lines separated by blank lines. Errors
// name the line.
func ParseIndex(text []byte, repo string) ([]*Pkg, error) {
	var out []*Pkg
	var p *Pkg
	finish := func(line int) error {
		if p == nil {
			return nil
		}
		if p.Name == "" || p.Version == "" {
			return fmt.Errorf("APKINDEX:%d: stanza without P: or V:", line)
		}
		out = append(out, p)
		p = nil
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" {
			if err := finish(n); err != nil {
				return nil, err
			}
			continue
		}
		if len(line) < 2 || line[1] != ':' {
			return nil, fmt.Errorf("APKINDEX:%d: bad line %q", n, line)
		}
		if p == nil {
			p = &Pkg{Repo: repo}
		}
		v := line[2:]
		var err error
		switch line[0] {
		case 'C':
			p.Checksum = v
		case 'P':
			p.Name = v
		case 'V':
			p.Version = v
		case 'A':
			p.Arch = v
		case 'S':
			p.Size, err = strconv.ParseInt(v, 10, 64)
		case 'I':
			p.InstalledSize, err = strconv.ParseInt(v, 10, 64)
		case 'T':
			p.Description = v
		case 'U':
			p.URL = v
		case 'L':
			p.License = v
		case 'o':
			p.Origin = v
		case 'm':
			p.Maintainer = v
		case 't':
			p.BuildDate, err = strconv.ParseInt(v, 10, 64)
		case 'c':
			p.Commit = v
		case 'D':
			p.Depends = strings.Fields(v)
		case 'p':
			p.Provides = strings.Fields(v)
		case 'i':
			p.InstallIf = strings.Fields(v)
		case 'k':
			p.ProviderPriority, err = strconv.Atoi(v)
		}
		if err != nil {
			return nil, fmt.Errorf("APKINDEX:%d: %c: %w", n, line[0], err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("APKINDEX:%d: %w", n+1, err)
	}
	if err := finish(n); err != nil {
		return nil, err
	}
	return out, nil
}
