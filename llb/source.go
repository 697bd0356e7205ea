package llb

// Source maps: every op of a Kata layer carries the position of the manifest field that asked for
// it, so BuildKit's error for a failed step points at the manifest's line.

import (
	bkllb "github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/solver/pb"
)

// Source locates the manifest's fields.
type Source struct {
	// Files holds the text of each manifest file, by the name errors should show.
	Files map[string][]byte
	// Fields maps a top-level manifest field ("release", "agent", "modules", "policy", "files",
	// "slim") to where it is written.
	Fields map[string]Location
}

// Location is a 1-based line and column in one of [Source.Files].
type Location struct {
	File      string
	Line, Col int
}

// locator turns manifest fields into source locations, with one [bkllb.SourceMap] per file.
type locator struct {
	src  *Source
	maps map[string]*bkllb.SourceMap
}

func newLocator(src *Source) locator {
	l := locator{src: src, maps: map[string]*bkllb.SourceMap{}}
	if src != nil {
		for name, data := range src.Files {
			l.maps[name] = bkllb.NewSourceMap(nil, name, "CUE", data)
		}
	}
	return l
}

// at is the source location of a manifest field, joined with the layer's progress group; without
// a known location it is the group alone.
func (l locator) at(field string, pg bkllb.ConstraintsOpt) bkllb.ConstraintsOpt {
	if l.src == nil {
		return pg
	}
	loc, ok := l.src.Fields[field]
	sm := l.maps[loc.File]
	if !ok || sm == nil || loc.Line < 1 {
		return pg
	}
	p := &pb.Position{Line: int32(loc.Line), Character: int32(max(loc.Col-1, 0))}
	return joined{pg, sm.Location([]*pb.Range{{Start: p, End: p}})}
}

// joined applies several constraint options as one, so a layer passes a single option (its
// progress group and its source location) to every op.
type joined []bkllb.ConstraintsOpt

func (j joined) SetConstraintsOption(c *bkllb.Constraints) {
	for _, o := range j {
		o.SetConstraintsOption(c)
	}
}

func (j joined) SetRunOption(ei *bkllb.ExecInfo) {
	for _, o := range j {
		o.SetRunOption(ei)
	}
}

func (j joined) SetLocalOption(li *bkllb.LocalInfo) {
	for _, o := range j {
		o.SetLocalOption(li)
	}
}

func (j joined) SetHTTPOption(hi *bkllb.HTTPInfo) {
	for _, o := range j {
		o.SetHTTPOption(hi)
	}
}

func (j joined) SetImageBlobOption(ii *bkllb.ImageBlobInfo) {
	for _, o := range j {
		o.SetImageBlobOption(ii)
	}
}

func (j joined) SetImageOption(ii *bkllb.ImageInfo) {
	for _, o := range j {
		o.SetImageOption(ii)
	}
}

func (j joined) SetGitOption(gi *bkllb.GitInfo) {
	for _, o := range j {
		o.SetGitOption(gi)
	}
}

func (j joined) SetOCILayoutOption(oi *bkllb.OCILayoutInfo) {
	for _, o := range j {
		o.SetOCILayoutOption(oi)
	}
}
