package schema

//go:generate go run ../internal/gendistros
//go:generate go tool cue exp gengotypes -o cue_types_gen.go .

import (
	_ "embed"
	"sync"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/cuecontext"
)

// Source is the text of schema.cue, the published schema; `cue vet -c -d '#Manifest'
// schema/schema.cue schema/distros.cue MANIFEST.json` (distros.cue holds the built-in distro
// definitions, generated) gives the same verdict as rootfsc.
//
//go:embed schema.cue
var Source []byte

// Compiled is the schema compiled once in its own [cue.Context]. Values built
// from it must be unified only with values of the same context, so callers use
// Compiled().Context() to compile manifests; a cue.Context is not safe for
// concurrent use, so callers serialise their evaluations.
var Compiled = sync.OnceValue(func() cue.Value {
	v := cuecontext.New().CompileBytes(Source, cue.Filename("schema/schema.cue"))
	if err := v.Err(); err != nil {
		// The schema is tested; a broken embed is a build defect.
		panic("schema: compiling schema.cue: " + err.Error())
	}
	return v
})

// CompileIn compiles the schema in c, for a caller that keeps a [cue.Context] per load.
func CompileIn(c *cue.Context) cue.Value {
	v := c.CompileBytes(Source, cue.Filename("schema/schema.cue"))
	if err := v.Err(); err != nil {
		panic("schema: compiling schema.cue: " + err.Error())
	}
	return v
}

// Lookup returns the definition name (e.g. "#Manifest") from [Compiled].
func Lookup(def string) cue.Value {
	return Compiled().LookupPath(cue.ParsePath(def))
}
