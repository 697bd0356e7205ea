package deb

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// DefaultSourcesFiles lists the host apt source locations read by [Mirrors] when given no files.
func DefaultSourcesFiles() []string {
	files := []string{"/etc/apt/sources.list"}
	for _, pat := range []string{"/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		m, _ := filepath.Glob(pat)
		files = append(files, m...)
	}
	return files
}

// Mirrors parses apt sources files (one-line "deb URI suite comp..." and deb822 ".sources") into suite sources.
// With no arguments it reads [DefaultSourcesFiles]. Missing files, deb-src entries, "Enabled: no"
// stanzas and files ending in ".disabled" are skipped; a suite listed twice keeps its first entry.
func Mirrors(sourcesFiles ...string) ([]SuiteSource, error) {
	if len(sourcesFiles) == 0 {
		sourcesFiles = DefaultSourcesFiles()
	}
	var out []SuiteSource
	seen := map[string]bool{}
	add := func(s SuiteSource) {
		if seen[s.Name] {
			return
		}
		seen[s.Name] = true
		out = append(out, s)
	}
	for _, f := range sourcesFiles {
		if strings.Contains(filepath.Base(f), ".disabled") {
			continue
		}
		b, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read apt sources: %w", err)
		}
		var ss []SuiteSource
		if strings.HasSuffix(f, ".sources") {
			ss, err = parseDeb822Sources(b)
		} else {
			ss, err = parseOneLineSources(b)
		}
		if err != nil {
			return nil, fmt.Errorf("parse apt sources %s: %w", f, err)
		}
		for _, s := range ss {
			add(s)
		}
	}
	return out, nil
}

func archiveOf(uri string) string {
	return path.Base(strings.TrimRight(uri, "/"))
}

func parseOneLineSources(b []byte) ([]SuiteSource, error) {
	var out []SuiteSource
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if len(f) > 0 && strings.HasPrefix(f[0], "[") { // options: [arch=amd64 signed-by=...]
			for len(f) > 0 {
				done := strings.HasSuffix(f[0], "]")
				f = f[1:]
				if done {
					break
				}
			}
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("line %d: want \"deb URI suite component...\"", n)
		}
		uri := strings.TrimRight(f[0], "/")
		out = append(out, SuiteSource{Name: f[1], URI: uri, Archive: archiveOf(uri), Components: f[2:]})
	}
	return out, sc.Err()
}

func parseDeb822Sources(b []byte) ([]SuiteSource, error) {
	var out []SuiteSource
	for _, st := range splitStanzas(b) {
		fields := map[string]string{}
		var last string
		for _, line := range strings.Split(string(st), "\n") {
			if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
				continue
			}
			if line[0] == ' ' || line[0] == '\t' {
				if last != "" {
					fields[last] += " " + strings.TrimSpace(line)
				}
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
		if strings.EqualFold(fields["enabled"], "no") || !contains(strings.Fields(fields["types"]), "deb") {
			continue
		}
		for _, uri := range strings.Fields(fields["uris"]) {
			uri = strings.TrimRight(uri, "/")
			for _, suite := range strings.Fields(fields["suites"]) {
				out = append(out, SuiteSource{Name: suite, URI: uri, Archive: archiveOf(uri), Components: strings.Fields(fields["components"])})
			}
		}
	}
	return out, nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// splitStanzas splits control-file text on blank lines.
func splitStanzas(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		var st []byte
		st, b = nextStanza(b)
		if len(bytes.TrimSpace(st)) > 0 {
			out = append(out, st)
		}
	}
	return out
}

// nextStanza cuts the first blank-line-separated stanza off control-file text.
func nextStanza(b []byte) (stanza, rest []byte) {
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		return b[:i], b[i+2:]
	}
	return b, nil
}
