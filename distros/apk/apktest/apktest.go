// Package apktest makes signed apk repositories for tests: .apk files with their signature,
// control and data members, and an APKINDEX.tar.gz signed with a test key, laid out as an
// Alpine mirror (VERSION/REPO/ARCH/…) for an httptest server. Alpine's mirror is not
// reachable from the machines rootfsc is tested on; the formats are the ones apk-tools reads.
package apktest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"
)

// Key is a signing key and the name apk knows its public half by (the file in /etc/apk/keys).
type Key struct {
	Name    string
	Private *rsa.PrivateKey
}

// NewKey makes a 2048-bit RSA key named name (like "test@rootfsc-6a1b2c3d.rsa.pub").
func NewKey(name string) (*Key, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	return &Key{Name: name, Private: k}, nil
}

// PublicPEM is the public key as apk keeps it: a PEM "PUBLIC KEY" (PKIX) block.
func (k *Key) PublicPEM() string {
	der, err := x509.MarshalPKIXPublicKey(&k.Private.PublicKey)
	if err != nil {
		panic(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// sign is the signature member over the SHA-1 of data: a tar cut short (no end blocks) holding
// .SIGN.RSA.<key name>, gzipped.
func (k *Key) sign(data []byte) ([]byte, error) {
	sum := sha1.Sum(data)
	sig, err := rsa.SignPKCS1v15(nil, k.Private, crypto.SHA1, sum[:])
	if err != nil {
		return nil, err
	}
	return gzipTar([]entry{{h: &tar.Header{Name: ".SIGN.RSA." + k.Name, Mode: 0o644, Typeflag: tar.TypeReg}, data: sig}}, false)
}

// File is one entry of a package's data.
type File struct {
	Path string
	Mode int64 // with the type bits left out; 0 means 0644 (files) or 0755 (directories)
	Dir  bool
	Link string // a symlink's target
	// Hardlink names an earlier entry this one is a hard link to.
	Hardlink string
	Data     []byte
	Uid, Gid int
}

// Package is one package to build.
type Package struct {
	Name, Version, Arch, Description, Origin string
	Depends, Provides, InstallIf             []string
	ProviderPriority                         int
	Files                                    []File
	Scripts                                  map[string]string // ".post-install" → script
	BuildDate                                int64
}

// Built is a built package: its bytes and the index fields derived from them.
type Built struct {
	Package
	APK []byte
	// Checksum is the index's C: "Q1" and the base64 SHA-1 of the control member.
	Checksum      string
	InstalledSize int64
}

// FileName is the package's name in its repository: NAME-VERSION.apk.
func (b *Built) FileName() string { return b.Name + "-" + b.Version + ".apk" }

// SHA256 is the hex SHA-256 of the .apk.
func (b *Built) SHA256() string {
	s := sha256.Sum256(b.APK)
	return hex.EncodeToString(s[:])
}

type entry struct {
	h    *tar.Header
	data []byte
}

// gzipTar writes entries as one gzip member; end says whether the tar gets its end blocks
// (the data member does, abuild cuts them from the signature and control members).
func gzipTar(entries []entry, end bool) ([]byte, error) {
	var b bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		if e.h.ModTime.IsZero() {
			e.h.ModTime = time.Unix(0, 0)
		}
		e.h.Size = int64(len(e.data))
		if e.h.Typeflag != tar.TypeReg {
			e.h.Size = 0
		}
		if err := tw.WriteHeader(e.h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	var err error
	if end {
		err = tw.Close()
	} else {
		err = tw.Flush()
	}
	if err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Build makes p's .apk signed with key (unsigned when key is nil).
func Build(p Package, key *Key) (*Built, error) {
	if p.Arch == "" {
		p.Arch = "x86_64"
	}
	if p.Origin == "" {
		p.Origin = p.Name
	}
	var data []entry
	var size int64
	for _, f := range p.Files {
		h := &tar.Header{Name: f.Path, Uid: f.Uid, Gid: f.Gid, Mode: f.Mode, ModTime: time.Unix(p.BuildDate, 0), Format: tar.FormatPAX}
		switch {
		case f.Dir:
			h.Typeflag = tar.TypeDir
			if h.Mode == 0 {
				h.Mode = 0o755
			}
			h.Name = strings.TrimSuffix(h.Name, "/") + "/"
		case f.Link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, f.Link, 0o777
			sum := sha1.Sum([]byte(f.Link))
			h.PAXRecords = map[string]string{"APK-TOOLS.checksum.SHA1": hex.EncodeToString(sum[:])}
		case f.Hardlink != "":
			h.Typeflag, h.Linkname = tar.TypeLink, f.Hardlink
		default:
			h.Typeflag = tar.TypeReg
			if h.Mode == 0 {
				h.Mode = 0o644
			}
			sum := sha1.Sum(f.Data)
			h.PAXRecords = map[string]string{"APK-TOOLS.checksum.SHA1": hex.EncodeToString(sum[:])}
			size += int64(len(f.Data))
		}
		data = append(data, entry{h, f.Data})
	}
	dataGz, err := gzipTar(data, true)
	if err != nil {
		return nil, err
	}
	dh := sha256.Sum256(dataGz)
	var info strings.Builder
	fmt.Fprintf(&info, "# Generated by rootfsc's apktest\npkgname = %s\npkgver = %s\npkgdesc = %s\nurl = https://example.invalid/%s\nbuilddate = %d\npackager = rootfsc tests\nsize = %d\narch = %s\norigin = %s\nlicense = MIT\n",
		p.Name, p.Version, p.Description, p.Name, p.BuildDate, size, p.Arch, p.Origin)
	for _, d := range p.Depends {
		fmt.Fprintf(&info, "depend = %s\n", d)
	}
	for _, d := range p.Provides {
		fmt.Fprintf(&info, "provides = %s\n", d)
	}
	if len(p.InstallIf) > 0 {
		fmt.Fprintf(&info, "install_if = %s\n", strings.Join(p.InstallIf, " "))
	}
	if p.ProviderPriority != 0 {
		fmt.Fprintf(&info, "provider_priority = %d\n", p.ProviderPriority)
	}
	fmt.Fprintf(&info, "datahash = %s\n", hex.EncodeToString(dh[:]))
	control := []entry{{h: &tar.Header{Name: ".PKGINFO", Mode: 0o644, Typeflag: tar.TypeReg}, data: []byte(info.String())}}
	names := make([]string, 0, len(p.Scripts))
	for n := range p.Scripts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		control = append(control, entry{h: &tar.Header{Name: n, Mode: 0o755, Typeflag: tar.TypeReg}, data: []byte(p.Scripts[n])})
	}
	controlGz, err := gzipTar(control, false)
	if err != nil {
		return nil, err
	}
	var apk []byte
	if key != nil {
		sig, err := key.sign(controlGz)
		if err != nil {
			return nil, err
		}
		apk = append(apk, sig...)
	}
	apk = append(apk, controlGz...)
	apk = append(apk, dataGz...)
	cs := sha1.Sum(controlGz)
	return &Built{Package: p, APK: apk, Checksum: "Q1" + base64.StdEncoding.EncodeToString(cs[:]), InstalledSize: size}, nil
}

// IndexText is the APKINDEX text for pkgs, one stanza each.
func IndexText(pkgs []*Built) string {
	var b strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&b, "C:%s\nP:%s\nV:%s\nA:%s\nS:%d\nI:%d\nT:%s\nU:https://example.invalid/%s\nL:MIT\no:%s\nm:rootfsc tests\nt:%d\n",
			p.Checksum, p.Name, p.Version, p.Arch, len(p.APK), p.InstalledSize, p.Description, p.Name, p.Origin, p.BuildDate)
		if len(p.Depends) > 0 {
			fmt.Fprintf(&b, "D:%s\n", strings.Join(p.Depends, " "))
		}
		if len(p.Provides) > 0 {
			fmt.Fprintf(&b, "p:%s\n", strings.Join(p.Provides, " "))
		}
		if len(p.InstallIf) > 0 {
			fmt.Fprintf(&b, "i:%s\n", strings.Join(p.InstallIf, " "))
		}
		if p.ProviderPriority != 0 {
			fmt.Fprintf(&b, "k:%d\n", p.ProviderPriority)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Index is APKINDEX.tar.gz for pkgs, signed with key: the signature member over the SHA-1 of
// the index member, then the index member (DESCRIPTION and APKINDEX).
func Index(pkgs []*Built, description string, key *Key) ([]byte, error) {
	idx, err := gzipTar([]entry{
		{h: &tar.Header{Name: "DESCRIPTION", Mode: 0o644, Typeflag: tar.TypeReg}, data: []byte(description)},
		{h: &tar.Header{Name: "APKINDEX", Mode: 0o644, Typeflag: tar.TypeReg}, data: []byte(IndexText(pkgs))},
	}, true)
	if err != nil {
		return nil, err
	}
	sig, err := key.sign(idx)
	if err != nil {
		return nil, err
	}
	return append(sig, idx...), nil
}

// Mirror lays out repositories as an Alpine mirror: VERSION/REPO/ARCH/APKINDEX.tar.gz and the
// packages next to it. repos maps a repository name to its packages.
func Mirror(version, arch string, repos map[string][]*Built, key *Key) (map[string][]byte, error) {
	files := map[string][]byte{}
	for name, pkgs := range repos {
		dir := path.Join(version, name, arch)
		idx, err := Index(pkgs, version+" "+name, key)
		if err != nil {
			return nil, err
		}
		files[dir+"/APKINDEX.tar.gz"] = idx
		for _, p := range pkgs {
			files[dir+"/"+p.FileName()] = p.APK
		}
	}
	return files, nil
}
