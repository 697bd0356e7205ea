package build

// The SBOM of a build (the sbom output, and the attestation of image outputs): the lock's
// packages and the inputs read from the build context, with their digests.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/containerd/platforms"
	bkllb "github.com/moby/buildkit/client/llb"
	gwclient "github.com/moby/buildkit/frontend/gateway/client"
	gwpb "github.com/moby/buildkit/frontend/gateway/pb"
	"github.com/moby/buildkit/solver/result"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/distros/lock"
	"github.com/rootfsc/rootfsc/engine"
	rllb "github.com/rootfsc/rootfsc/llb"
	"github.com/rootfsc/rootfsc/policies"
	"github.com/rootfsc/rootfsc/sbom"
)

// SBOMPath is the SPDX document's name in the attestation's state.
const SBOMPath = "/rootfs.spdx.json"

// SBOM is the plan's SPDX document: every locked package (and the kernel package) and every
// input (agent, OPA, policy, modules tree, files), each input's digest taken from the bytes of
// the build context the build copies.
//
// licenses are the License lines of each installed package (see [licenseState]); nil leaves
// every license NOASSERTION.
func (p *Plan) SBOM(ctx context.Context, licenses map[string][]string) (*sbom.Result, error) {
	in := sbom.Input{
		Name:     strings.TrimSuffix(path.Base(p.Manifest.Name), ".cue"),
		Tool:     "rootfsc-" + Version,
		Epoch:    p.Epoch,
		Lock:     p.Lock,
		Licenses: licenses,
	}
	if s, ok := p.Family.(family.Supplier); ok && p.Lock != nil {
		in.Supplier = s.Supplier(p.Request)
		in.DownloadURL = func(pkg *lock.Package) string { return s.PackageURL(p.Request, pkg) }
	}
	comps, err := p.components()
	if err != nil {
		return nil, err
	}
	in.Components = comps
	return sbom.Build(in)
}

// components are the inputs that are not locked packages.
func (p *Plan) components() ([]sbom.Component, error) {
	m := p.Manifest.Manifest
	var out []sbom.Component
	local := func(role, name, version, file, comment string) error {
		sum, err := p.contextDigest(file)
		if err != nil {
			return fmt.Errorf("the SBOM: %s %s: %w", role, file, err)
		}
		out = append(out, sbom.Component{Role: role, Name: name, Version: version, Path: file, SHA256: sum, Comment: comment})
		return nil
	}
	download := func(role, name, version, url string, sum string) {
		out = append(out, sbom.Component{Role: role, Name: name, Version: version, URL: url, SHA256: sum})
	}
	if a := m.Agent; a != nil {
		switch {
		case a.File != "":
			if err := local("agent", "kata-agent", a.Version, a.File, ""); err != nil {
				return nil, err
			}
		case a.Tarball != nil && a.Tarball.Path != "":
			if err := local("agent", "kata-agent", a.Version, a.Tarball.Path, "a tarball unpacked at /"); err != nil {
				return nil, err
			}
		case a.Tarball != nil:
			download("agent", "kata-agent", a.Version, a.Tarball.URL, string(a.Tarball.Sha256))
		}
	}
	if pol := m.Policy; pol != nil {
		switch {
		case pol.File != "":
			if err := local("policy", strings.TrimSuffix(path.Base(pol.File), ".rego"), "", pol.File, "agent policy"); err != nil {
				return nil, err
			}
		case pol.Builtin != "":
			text, _ := policies.Builtin(pol.Builtin)
			sum := sha256.Sum256(text)
			out = append(out, sbom.Component{Role: "policy", Name: pol.Builtin, SHA256: hex.EncodeToString(sum[:]),
				Comment: "agent policy built into rootfsc " + Version})
		}
		if o := pol.OPA; o != nil {
			switch {
			case o.File != "":
				if err := local("opa", "opa", "", o.File, ""); err != nil {
					return nil, err
				}
			case o.URL != "":
				download("opa", "opa", "", o.URL, string(o.Sha256))
			}
		}
	}
	if mod := m.Modules; mod != nil && mod.Dir != "" {
		if err := local("modules", "kernel modules", "", mod.Dir,
			"a folder: the sha256 is of its listing, one line per entry (mode, sha256 of a file's bytes, path), in path order"); err != nil {
			return nil, err
		}
	}
	for fp, f := range m.Files {
		switch {
		case f.Source != "":
			if err := local("file", fp, "", f.Source, ""); err != nil {
				return nil, err
			}
		case f.Tarball != nil && f.Tarball.Path != "":
			if err := local("file", fp, "", f.Tarball.Path, "a tarball unpacked there"); err != nil {
				return nil, err
			}
		case f.Tarball != nil:
			download("file", fp, "", f.Tarball.URL, string(f.Tarball.Sha256))
		}
	}
	return out, nil
}

// contextDigest is the sha256 of a file of the build context, or of a folder's listing.
func (p *Plan) contextDigest(name string) (string, error) {
	if p.contextFS == nil {
		return "", fmt.Errorf("no build context")
	}
	fi, err := fs.Stat(p.contextFS, name)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return fileDigest(p.contextFS, name)
	}
	h := sha256.New()
	err = fs.WalkDir(p.contextFS, name, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		sum := "-"
		if d.Type().IsRegular() {
			if sum, err = fileDigest(p.contextFS, q); err != nil {
				return err
			}
		}
		rel := strings.TrimPrefix(strings.TrimPrefix(q, name), "/")
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%v %s %s\n", info.Mode(), sum, cmpOr(rel, "."))
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileDigest(fsys fs.FS, name string) (string, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// licensesFile is what the helper's licenses step writes in its output.
const licensesFile = "licenses.json"

// licenseState runs `rootfsc-helper licenses` over the base, read-only, network none: the
// packages' copyright files are read where they are, inside the build, from the base rather
// than the rootfs, whose slim edit removes /usr/share/doc. Its output holds only licenses.json.
func licenseState(base, helper bkllb.State) bkllb.State {
	const target, out = "/target", "/out"
	run := bkllb.Scratch().Run(
		bkllb.AddMount(rllb.HelperDir, helper, bkllb.Readonly),
		bkllb.AddMount(target, base, bkllb.Readonly),
		bkllb.Network(bkllb.NetModeNone),
		bkllb.Args([]string{rllb.HelperBin, "licenses", "--root", target, "--out", path.Join(out, licensesFile)}),
		bkllb.WithCustomName("sbom: licenses from /usr/share/doc/*/copyright"),
	)
	return run.AddMount(out, bkllb.Scratch())
}

// readLicenses solves the licenses step and reads its answer.
func (p *Plan) readLicenses(ctx context.Context, c gwclient.Client, base, helper bkllb.State, platform ocispecs.Platform) (map[string][]string, error) {
	ref, err := solveState(ctx, c, licenseState(base, helper), platform, false, nil, p.cacheOpts()...)
	if err != nil {
		return nil, fmt.Errorf("the SBOM's licenses: %w", err)
	}
	b, err := ref.ReadFile(ctx, gwclient.ReadRequest{Filename: licensesFile})
	if err != nil {
		return nil, fmt.Errorf("the SBOM's licenses: %w", err)
	}
	var out map[string][]string
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("the SBOM's licenses: %s: %w", licensesFile, err)
	}
	return out, nil
}

// addSBOM solves the document as a state of its own and attaches it to res: as an in-toto SBOM
// attestation of the platform's image, shaped like BuildKit's own (predicate
// https://spdx.dev/Document), and as the result's [engine.SBOMKey] metadata that the engine writes
// the sbom outputs from. The attestation is inline-only, so that the tar exporter (the tar, dir
// and initrd outputs) does not add the document to the rootfs; the engine asks the image
// exporters to keep it (attestation-inline).
func addSBOM(ctx context.Context, c gwclient.Client, res *gwclient.Result, doc []byte, platform ocispecs.Platform, epoch int64, cache []bkllb.ConstraintsOpt) error {
	created := time.Unix(epoch, 0).UTC()
	st := bkllb.Scratch().File(bkllb.Mkfile(SBOMPath, 0o644, doc, bkllb.WithCreatedTime(created)),
		bkllb.WithCustomName("sbom: "+strings.TrimPrefix(SBOMPath, "/")))
	ref, err := solveState(ctx, c, st, platform, false, nil, cache...)
	if err != nil {
		return fmt.Errorf("the SBOM: %w", err)
	}
	res.AddAttestation(platforms.FormatAll(platforms.Normalize(platform)), result.Attestation[gwclient.Reference]{
		Kind: gwpb.AttestationKind_InToto,
		Metadata: map[string][]byte{
			result.AttestationReasonKey:     []byte(result.AttestationReasonSBOM),
			result.AttestationInlineOnlyKey: []byte("true"),
		},
		Ref:    ref,
		Path:   SBOMPath,
		InToto: result.InTotoAttestation{PredicateType: sbom.PredicateType},
	})
	res.AddMeta(engine.SBOMKey, doc)
	return nil
}
