package llb

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSourceLocations: with a Source, the ops of each layer carry the position of the manifest
// field they come from, so BuildKit reports a failed step at that line.
func TestSourceLocations(t *testing.T) {
	in := kataCases()[0].input()
	in.Source = &Source{
		Files: map[string][]byte{"m.cue": []byte("distro: \"debian\"\nrelease: \"bookworm\"\nagent: file: \"bin/kata-agent\"\nmodules: package: \"linux-image-amd64\"\npolicy: builtin: \"allow-all\"\nfiles: {}\nslim: true\n")},
		Fields: map[string]Location{
			"release": {File: "m.cue", Line: 2, Col: 1},
			"agent":   {File: "m.cue", Line: 3, Col: 1},
			"modules": {File: "m.cue", Line: 4, Col: 1},
			"policy":  {File: "m.cue", Line: 5, Col: 1},
			"files":   {File: "m.cue", Line: 6, Col: 1},
			"slim":    {File: "m.cue", Line: 7, Col: 1},
		},
	}
	res, err := lowerTest(in, Opts{BuilderVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	src := res.Def.Source
	if src == nil || len(src.Infos) != 1 || src.Infos[0].Filename != "m.cue" || src.Infos[0].Language != "CUE" {
		t.Fatalf("Def.Source infos = %v, want one CUE file m.cue", src)
	}
	// Lines used by some op: every field above.
	lines := map[int32]bool{}
	for _, locs := range src.Locations {
		for _, l := range locs.Locations {
			for _, r := range l.Ranges {
				lines[r.Start.Line] = true
			}
		}
	}
	want := map[int32]bool{2: true, 3: true, 4: true, 5: true, 6: true, 7: true}
	if diff := cmp.Diff(want, lines); diff != "" {
		t.Errorf("source lines of the ops (-want +got):\n%s", diff)
	}

	// Without a Source, no locations: the goldens stay free of them.
	in.Source = nil
	res, err = lowerTest(in, Opts{BuilderVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if s := res.Def.Source; s != nil {
		for dgst, locs := range s.Locations {
			if len(locs.Locations) > 0 {
				t.Errorf("op %s has source locations without a Source: %v", dgst, locs)
			}
		}
	}
}
