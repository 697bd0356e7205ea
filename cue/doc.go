// Package cue loads a rootfsc manifest, unifies it with the schema and its distro definition, and decodes it into [schema.Manifest].
package cue
