package copyright

import (
	"bufio"
	"io"
	"strings"
)

// maxSize bounds what Licenses reads of one file: a copyright file of a Debian package is at
// most a few hundred KB, and a hostile one must not take the build's memory.
const maxSize = 4 << 20

// Licenses returns the License lines (the first line of each License field, the short names
// and their "or"/"and" combinations) of the header and Files paragraphs of a DEP-5 file, each
// once, in the order they first appear; nil when the file is not machine-readable (no Format
// field in its first paragraph naming the copyright format), so nothing is guessed from prose.
func Licenses(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(io.LimitReader(r, maxSize))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []string
	seen := map[string]bool{}
	first, machine := true, false
	fields := map[string]string{}
	flush := func() {
		if len(fields) == 0 {
			return
		}
		if first {
			f := strings.ToLower(fields["format"])
			machine = strings.Contains(f, "copyright-format") || strings.Contains(f, "dep5") || strings.Contains(f, "dep-5")
			first = false
		}
		// A stand-alone License paragraph (no Files) gives the text of a name used above.
		_, files := fields["files"]
		_, format := fields["format"]
		if l := fields["license"]; machine && l != "" && (files || format) && !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
		fields = map[string]string{}
	}
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			// A continuation line: the License field's first line is its name.
		case line[0] == '#':
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			fields[strings.ToLower(strings.TrimSpace(k))] = strings.Join(strings.Fields(v), " ")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	flush()
	if !machine {
		return nil, nil
	}
	return out, nil
}
