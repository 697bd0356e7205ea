package cue

import (
	"context"
	"testing"
	"testing/fstest"
	"time"
)

// FuzzLoad gives the loader arbitrary manifest text: it must return a manifest or an error,
// never panic or hang, and an error must format. Run longer with
// `go test -run '^$' -fuzz FuzzLoad -fuzztime 10m ./cue`.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"distro: \"debian\"\nrelease: \"bookworm\"\npackages: [\"iptables\"]\n",
		"agent: {file: \"kata-agent\", init: \"agent\"}\npolicy: {builtin: \"allow-all\", engine: \"agent-builtin\"}\n",
		"files: \"/etc/motd\": {content: \"hi\", mode: 0o644, owner: \"0:0\"}\noutputs: [{type: \"oci\", dest: \"r.tar\"}]\n",
		"distro: \"debian\"\nrelease: \"buster\"\n",
		"modules: {dir: \"m\", package: \"p\"}\n",
		"import \"strings\"\nx: strings.Repeat(\"a\", 3)\n",
		"a: b\nb: a\n",
		"{",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res, err := Load(ctx, fstest.MapFS{"m.cue": {Data: data}}, "m.cue", Opts{Dir: "/fuzz"})
		if err != nil {
			_ = FormatError(err, "/fuzz")
			return
		}
		if res.Manifest == nil {
			t.Fatal("Load() gave neither a manifest nor an error")
		}
		_ = NotImplemented(res)
	})
}
