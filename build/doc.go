// Package build is rootfsc's pipeline as a library: [Prepare] loads a manifest, pins its lock
// and checks its inputs; [Frontend] is the one gateway BuildFunc that lowers and solves it, run
// in-process by the CLI and inside buildkitd as the image frontend.
package build
