package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	rcue "github.com/rootfsc/rootfsc/cue"
	"github.com/rootfsc/rootfsc/engine"
	"github.com/rootfsc/rootfsc/policies"
	"github.com/rootfsc/rootfsc/sbom"
)

// memSource is a Source over memory: the manifest and the context are the same file system.
func memSource(files fstest.MapFS) Source {
	return Source{Manifest: files, Name: "m.cue", Dir: "/m",
		Context: func(context.Context, []string) (fs.FS, error) { return files, nil }}
}

func TestPrepareErrors(t *testing.T) {
	agent := &fstest.MapFile{Data: []byte("\x7fELF agent"), Mode: 0o755}
	tests := []struct {
		name  string
		files fstest.MapFS
		opts  Opts
		want  string
	}{
		{"absolute input", fstest.MapFS{"m.cue": {Data: []byte("agent: file: \"/etc/shadow\"\n")}}, Opts{},
			"m.cue:1:8: agent.file: /etc/shadow leaves the build context"},
		{"dot-dot input", fstest.MapFS{"m.cue": {Data: []byte("agent: file: \"a/../../x\"\n")}}, Opts{},
			"m.cue:1:8: agent.file: a/../../x leaves the build context"},
		{"missing input", fstest.MapFS{"m.cue": {Data: []byte("agent: file: \"kata-agent\"\n")}}, Opts{},
			"m.cue:1:8: agent.file: kata-agent: file does not exist"},
		{"folder as file", fstest.MapFS{"m.cue": {Data: []byte("agent: file: \"bin\"\n")}, "bin/x": agent}, Opts{},
			"m.cue:1:8: agent.file: bin is not a regular file"},
		{"not an archive", fstest.MapFS{"m.cue": {Data: []byte("agent: tarball: path: \"kata-agent\"\n")}, "kata-agent": agent}, Opts{},
			"m.cue:1:17: agent.tarball.path: kata-agent is not a tar archive"},
		{"locked without a lock", fstest.MapFS{"m.cue": {Data: []byte("distro: \"debian\"\nrelease: \"bookworm\"\n")}}, Opts{Locked: true},
			"--locked: /m/m.cue.lock.json: no lock; run rootfsc lock m.cue"},
		{"locked with a stale lock", fstest.MapFS{"m.cue": {Data: []byte("distro: \"debian\"\nrelease: \"bookworm\"\npackages: [\"curl\"]\n")},
			"m.cue.lock.json": {Data: []byte(`{"version": 1, "inputDigest": "sha256:0", "distro": "debian", "release": "bookworm", "arch": "amd64", "packages": [{"name": "bash"}]}`)}},
			Opts{Locked: true}, "lock is stale: input digest sha256:0, inputs now sha256:"},
		{"bad policy", fstest.MapFS{"m.cue": {Data: []byte("policy: {file: \"p.rego\", engine: \"agent-builtin\"}\n")},
			"p.rego": {Data: []byte("package agent_policy\n\ndefault ExecProcesRequest := true\n")}}, Opts{},
			`p.rego:3:9: unknown agent request "ExecProcesRequest" (did you mean "ExecProcessRequest"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Prepare(context.Background(), memSource(tt.files), tt.opts)
			if err == nil {
				t.Fatal("Prepare() succeeded")
			}
			if got := rcue.FormatError(err, "/m"); !strings.Contains(got, tt.want) {
				t.Errorf("Prepare() error = %q, want it to contain %q", got, tt.want)
			}
		})
	}
}

func TestPrepareOverlay(t *testing.T) {
	epoch := int64(1700000000)
	files := fstest.MapFS{
		"m.cue":          {Data: []byte("agent: {file: \"./bin//kata-agent\", init: \"agent\"}\npolicy: {builtin: \"allow-all\", engine: \"agent-builtin\"}\n")},
		"bin/kata-agent": {Data: []byte("agent"), Mode: 0o755},
	}
	p, err := Prepare(context.Background(), memSource(files), Opts{SourceDateEpoch: &epoch})
	if err != nil {
		t.Fatal(rcue.FormatError(err, "/m"))
	}
	if diff := cmp.Diff([]string{"bin/kata-agent"}, p.ContextPaths()); diff != "" {
		t.Errorf("ContextPaths() mismatch (-want +got):\n%s", diff)
	}
	if p.Epoch != epoch || p.Family != nil || p.Lock != nil {
		t.Errorf("Prepare() = epoch %d, family %v, lock %v; want the overlay's epoch, no family or lock", p.Epoch, p.Family, p.Lock)
	}
	cfg := p.ImageConfig(map[string]string{"org.opencontainers.image.source": "https://example.invalid/kata"})
	want := map[string]string{
		"org.opencontainers.image.created":       "2023-11-14T22:13:20Z",
		"org.opencontainers.image.title":         "m",
		"org.opencontainers.image.version":       "rootfsc " + Version,
		"org.opencontainers.image.source":        "https://example.invalid/kata",
		"io.katacontainers.rootfs.agent-init":    "agent",
		"io.katacontainers.rootfs.policy":        "allow-all",
		"io.katacontainers.rootfs.policy-engine": "agent-builtin",
	}
	if diff := cmp.Diff(want, cfg.Config.Labels); diff != "" {
		t.Errorf("ImageConfig() labels mismatch (-want +got):\n%s", diff)
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" || cfg.Created.Unix() != epoch {
		t.Errorf("ImageConfig() = %s/%s created %v", cfg.OS, cfg.Architecture, cfg.Created)
	}
}

func TestParseOutputs(t *testing.T) {
	got, err := ParseOutputs([]string{
		"type=oci,dest=/o/r.oci.tar,compression=zstd",
		"type=image,name=127.0.0.1:5000/r:1,push=true,registry.insecure=true",
		`type=tar,dest=/o/r.tar`,
		"type=sbom,dest=/o/r.spdx.json",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []engine.Output{
		{Type: "oci", Dest: "/o/r.oci.tar", Attrs: map[string]string{"compression": "zstd"}},
		{Type: "image", Dest: "127.0.0.1:5000/r:1", Attrs: map[string]string{"push": "true", "registry.insecure": "true"}},
		{Type: "tar", Dest: "/o/r.tar", Attrs: map[string]string{}},
		{Type: "sbom", Dest: "/o/r.spdx.json", Attrs: map[string]string{}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ParseOutputs() mismatch (-want +got):\n%s", diff)
	}
	for spec, msg := range map[string]string{
		"type=floppy,dest=x": "type must be one of dir, tar, initrd, sbom, oci, docker, image",
		"type=tar":           "dest is required",
		"type=image":         "name is required",
		"type=tar,dest":      `"dest" is not key=value`,
	} {
		if _, err := ParseOutputs([]string{spec}); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseOutputs(%q) error = %v, want %q", spec, err, msg)
		}
	}
}

// The SBOM's inputs are digests of the context's bytes: a file's, a folder's listing's, and the
// built-in policy's text.
func TestPlanSBOMComponents(t *testing.T) {
	epoch := int64(1700000000)
	files := fstest.MapFS{
		"m.cue": {Data: []byte("agent: {file: \"bin/kata-agent\", init: \"agent\", version: \"3.2.0\"}\n" +
			"policy: {builtin: \"allow-all\", engine: \"agent-builtin\"}\n" +
			"files: \"/etc/motd\": source: \"motd\"\nfiles: \"/opt/tree\": source: \"tree\"\n")},
		"bin/kata-agent": {Data: []byte("agent"), Mode: 0o755},
		"motd":           {Data: []byte("hello\n"), Mode: 0o644},
		"tree/a":         {Data: []byte("a"), Mode: 0o644},
	}
	p, err := Prepare(context.Background(), memSource(files), Opts{SourceDateEpoch: &epoch})
	if err != nil {
		t.Fatal(rcue.FormatError(err, "/m"))
	}
	got, err := p.components()
	if err != nil {
		t.Fatal(err)
	}
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	policy, _ := policies.Builtin("allow-all")
	treeMode := files["tree/a"].Mode
	want := []sbom.Component{
		{Role: "agent", Name: "kata-agent", Version: "3.2.0", Path: "bin/kata-agent", SHA256: sum("agent")},
		{Role: "policy", Name: "allow-all", SHA256: sum(string(policy)), Comment: "agent policy built into rootfsc " + Version},
		{Role: "file", Name: "/etc/motd", Path: "motd", SHA256: sum("hello\n")},
		{Role: "file", Name: "/opt/tree", Path: "tree", SHA256: sum(fmt.Sprintf("%v - .\n%v %s a\n", fs.ModeDir|0o555, treeMode, sum("a")))},
	}
	sortComps := cmpopts.SortSlices(func(a, b sbom.Component) bool { return a.Role+a.Name < b.Role+b.Name })
	if diff := cmp.Diff(want, got, sortComps); diff != "" {
		t.Errorf("components() mismatch (-want +got):\n%s", diff)
	}
	doc, err := p.SBOM(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Document.CreationInfo.Created != "2023-11-14T22:13:20Z" || doc.Document.DocumentName != "m" {
		t.Errorf("SBOM() = created %s, name %s; want the epoch and the manifest's name", doc.Document.CreationInfo.Created, doc.Document.DocumentName)
	}
}
