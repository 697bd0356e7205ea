package llb

import (
	"context"
	"flag"
	"strings"
	"testing"

	bkllb "github.com/moby/buildkit/client/llb"

	"github.com/rootfsc/rootfsc/distros/deb"
	"github.com/rootfsc/rootfsc/distros/family"
	"github.com/rootfsc/rootfsc/distros/lock"
	"github.com/rootfsc/rootfsc/internal/llbdump"
	"github.com/rootfsc/rootfsc/schema"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// The mirror uses the reserved .invalid TLD: never a real host.
const testMirror = "http://mirror.invalid/debian"

func fakeSHA(c byte) string { return strings.Repeat(string(c), 64) }

func testLock() *lock.Lock {
	return &lock.Lock{
		Version: 1, InputDigest: "sha256:" + fakeSHA('0'), Distro: "debian", Release: "bookworm", Arch: "amd64",
		SourceDateEpoch: 1700000000,
		Suites: []lock.Suite{
			{Name: "bookworm", Archive: "debian", Date: "2023-10-07T10:00:00Z", ReleaseSHA256: fakeSHA('1')},
			{Name: "bookworm-security", Archive: "debian-security", Date: "2023-11-14T22:13:20Z", ReleaseSHA256: fakeSHA('2')},
		},
		Packages: []lock.Package{
			{Name: "base-files", Version: "12.4+deb12u2", Architecture: "amd64", Filename: "pool/main/b/base-files/base-files_12.4+deb12u2_amd64.deb", Size: 70000, SHA256: fakeSHA('a'), Suite: "bookworm", Essential: true},
			{Name: "chrony", Version: "4.3-2+deb12u1", Architecture: "amd64", Filename: "pool/main/c/chrony/chrony_4.3-2+deb12u1_amd64.deb", Size: 290000, SHA256: fakeSHA('b'), Suite: "bookworm"},
			{Name: "libssl3", Version: "3.0.11-1~deb12u2", Architecture: "amd64", Filename: "pool/updates/main/o/openssl/libssl3_3.0.11-1~deb12u2_amd64.deb", Size: 2000000, SHA256: fakeSHA('c'), Suite: "bookworm-security"},
			{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Architecture: "amd64", Filename: "pool/main/z/zlib/zlib1g_1.2.13.dfsg-1_amd64.deb", Size: 90000, SHA256: fakeSHA('d'), Suite: "bookworm", Essential: true},
		},
	}
}

// testIn is a lowering input as the pipeline gives it: a lock that the deb family lowers into the
// base (nil in overlay mode), and the Kata layers' input.
type testIn struct {
	Input
	Lock *lock.Lock
}

func testInput() testIn {
	return testIn{Lock: testLock()}
}

// testHelper stands for the helper state the pipeline passes.
func testHelper() bkllb.State {
	return bkllb.Local("rootfsc-helper", bkllb.IncludePatterns([]string{"rootfsc"}), bkllb.LocalUniqueID("rootfsc:rootfsc-helper"))
}

// testResult is a lowering and its single definition (the rootfs behind its check).
type testResult struct {
	*Result
	Def *bkllb.Definition
}

// lowerTest lowers in: the base through the deb family when it has a lock, then the Kata layers.
func lowerTest(in testIn, opts Opts) (*testResult, error) {
	ctx := context.Background()
	opts.Helper = testHelper()
	if in.Lock != nil {
		req := family.Request{Distro: in.Lock.Distro, Release: in.Lock.Release, Arch: in.Lock.Arch, Mirror: testMirror,
			Def: &schema.Release{Suites: []string{"bookworm", "bookworm-security"}, Components: []string{"main"},
				Archive: map[string]string{"bookworm": "debian", "bookworm-security": "debian-security"}}}
		if m := in.Manifest; m != nil && m.Modules != nil && m.Modules.Package != "" {
			req.Kernel = m.Modules.Package
		}
		base, err := (deb.Family{}).Lower(req, in.Lock, family.LowerOpts{Helper: opts.Helper,
			Base: BaseProgress(in.Source, "debian", "bookworm"), Kernel: ModulesProgress(in.Source)})
		if err != nil {
			return nil, err
		}
		in.Base = base
		in.Epoch = in.Lock.SourceDateEpoch
	} else if in.Epoch == 0 {
		in.Epoch = kataEpoch
	}
	res, err := Lower(ctx, in.Input, opts)
	if err != nil {
		return nil, err
	}
	def, err := res.Checked.Marshal(ctx, bkllb.LinuxAmd64)
	if err != nil {
		return nil, err
	}
	return &testResult{res, def}, nil
}

func dump(t *testing.T, def *bkllb.Definition) string {
	t.Helper()
	s, err := llbdump.Dump(def)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
