package policies

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBuiltins(t *testing.T) {
	want := []string{"allow-all", "allow-all-except-exec-process", "allow-set-policy"}
	if diff := cmp.Diff(want, BuiltinNames()); diff != "" {
		t.Errorf("BuiltinNames() mismatch (-want +got):\n%s", diff)
	}
	for _, name := range want {
		res, err := Check(context.Background(), []string{name}, Opts{})
		if err != nil {
			t.Errorf("Check(%s): %v", name, err)
			continue
		}
		got := res.Files[0]
		if got.RegoVersion != "v1" {
			t.Errorf("Check(%s) RegoVersion = %s, want v1", name, got.RegoVersion)
		}
		if diff := cmp.Diff(RequestNames, got.Rules); diff != "" {
			t.Errorf("Check(%s) rules mismatch (-want +got):\n%s", name, diff)
		}
	}
	for _, name := range []string{"", "nope", "../allow-all", "allow-all.rego"} {
		if _, ok := Builtin(name); ok {
			t.Errorf("Builtin(%q) found a policy", name)
		}
	}
}

func TestRequestNamesSorted(t *testing.T) {
	for i := 1; i < len(RequestNames); i++ {
		if RequestNames[i-1] >= RequestNames[i] {
			t.Errorf("RequestNames not sorted at %q", RequestNames[i])
		}
	}
	if len(RequestNames) != 36 {
		t.Errorf("len(RequestNames) = %d, want 36", len(RequestNames))
	}
}

func TestCheck(t *testing.T) {
	const b = "testdata/broken/"
	tests := []struct {
		file    string
		want    []FileResult // nil when the file does not parse
		wantErr []string
	}{
		{
			file: "testdata/create-sh.rego",
			want: []FileResult{{Path: "testdata/create-sh.rego", RegoVersion: "v1",
				Rules: []string{"CreateContainerRequest", "ExecProcessRequest", "SetPolicyRequest", "runs_rm"}}},
		},
		{
			file: "testdata/create-sh-v0.rego",
			want: []FileResult{{Path: "testdata/create-sh-v0.rego", RegoVersion: "v0",
				Rules: []string{"CreateContainerRequest", "ExecProcessRequest", "ReadStreamRequest", "SetPolicyRequest", "runs_rm"}}},
		},
		{
			file:    b + "syntax.rego",
			wantErr: []string{b + "syntax.rego:7:1: unexpected } token"},
		},
		{
			file:    b + "v0-syntax-error.rego",
			wantErr: []string{b + "v0-syntax-error.rego:10:30: unexpected eq token"},
		},
		{
			file:    b + "mixed-versions.rego",
			wantErr: []string{b + "mixed-versions.rego:9:1: `if` keyword is required before rule body"},
		},
		{
			file:    b + "empty.rego",
			wantErr: []string{b + "empty.rego:1:1: empty module"},
		},
		{
			file:    b + "wrong-package.rego",
			want:    []FileResult{{Path: b + "wrong-package.rego", RegoVersion: "v1", Rules: []string{"CreateContainerRequest"}}},
			wantErr: []string{b + "wrong-package.rego:1:1: package must be agent_policy, found kata"},
		},
		{
			file:    b + "misspelled.rego",
			want:    []FileResult{{Path: b + "misspelled.rego", RegoVersion: "v1", Rules: []string{"CreateContainerRequst"}}},
			wantErr: []string{b + `misspelled.rego:3:9: unknown agent request "CreateContainerRequst" (did you mean "CreateContainerRequest"?)`},
		},
		{
			file:    b + "misspelled-v0.rego",
			want:    []FileResult{{Path: b + "misspelled-v0.rego", RegoVersion: "v0", Rules: []string{"ExecProccessRequest"}}},
			wantErr: []string{b + `misspelled-v0.rego:3:1: unknown agent request "ExecProccessRequest" (did you mean "ExecProcessRequest"?)`},
		},
		{
			file:    b + "unknown-request.rego",
			want:    []FileResult{{Path: b + "unknown-request.rego", RegoVersion: "v1", Rules: []string{"LaunchMissilesRequest"}}},
			wantErr: []string{b + `unknown-request.rego:3:9: unknown agent request "LaunchMissilesRequest"`},
		},
		{
			file:    b + "string-default.rego",
			want:    []FileResult{{Path: b + "string-default.rego", RegoVersion: "v1", Rules: []string{"ExecProcessRequest"}}},
			wantErr: []string{b + "string-default.rego:3:9: rule ExecProcessRequest must be boolean"},
		},
		{
			file:    b + "number-default.rego",
			want:    []FileResult{{Path: b + "number-default.rego", RegoVersion: "v1", Rules: []string{"ExecProcessRequest"}}},
			wantErr: []string{b + "number-default.rego:3:9: rule ExecProcessRequest must be boolean"},
		},
		{
			file:    b + "non-boolean-value.rego",
			want:    []FileResult{{Path: b + "non-boolean-value.rego", RegoVersion: "v1", Rules: []string{"CopyFileRequest", "CreateContainerRequest"}}},
			wantErr: []string{b + "non-boolean-value.rego:5:1: rule CopyFileRequest must be boolean"},
		},
		{
			file:    b + "undefined-ref.rego",
			want:    []FileResult{{Path: b + "undefined-ref.rego", RegoVersion: "v1", Rules: []string{"CreateContainerRequest"}}},
			wantErr: []string{b + "undefined-ref.rego:5:27: var allowed_image is unsafe"},
		},
		{
			file: b + "multiple.rego",
			want: []FileResult{{Path: b + "multiple.rego", RegoVersion: "v1",
				Rules: []string{"CreateContainerRequst", "ExecProcessRequest", "WaitProcessRequest"}}},
			wantErr: []string{
				b + `multiple.rego:3:9: unknown agent request "CreateContainerRequst" (did you mean "CreateContainerRequest"?)`,
				b + "multiple.rego:5:9: rule ExecProcessRequest must be boolean",
			},
		},
		{
			file: b + "conflicting-default.rego",
			want: []FileResult{{Path: b + "conflicting-default.rego", RegoVersion: "v1", Rules: []string{"ExecProcessRequest"}}},
			// OPA gives this compile error no location of its own.
			wantErr: []string{b + "conflicting-default.rego:1:1: multiple default rules data.agent_policy.ExecProcessRequest found at " +
				b + "conflicting-default.rego:3, " + b + "conflicting-default.rego:5"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res, err := Check(context.Background(), []string{tt.file}, Opts{})
			var gotErr []string
			if err != nil {
				var ce *CheckError
				if !errors.As(err, &ce) {
					t.Fatalf("Check() error %v is not a *CheckError", err)
				}
				gotErr = ce.Errors
			}
			if diff := cmp.Diff(tt.wantErr, gotErr); diff != "" {
				t.Errorf("Check() errors mismatch (-want +got):\n%s", diff)
			}
			var got []FileResult
			if res != nil {
				got = res.Files
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckAllErrors(t *testing.T) {
	files := []string{"allow-all", "testdata/broken/syntax.rego", "testdata/broken/wrong-package.rego", "testdata/missing.rego"}
	_, err := Check(context.Background(), files, Opts{})
	want := "testdata/broken/syntax.rego:7:1: unexpected } token\n" +
		"testdata/broken/wrong-package.rego:1:1: package must be agent_policy, found kata\n" +
		"testdata/missing.rego: open testdata/missing.rego: no such file or directory"
	if err == nil || err.Error() != want {
		t.Errorf("Check() error = %v, want\n%s", err, want)
	}
}

func TestLevenshtein(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"kitten", "sitting", 3},
		{"CreateContainerRequst", "CreateContainerRequest", 1},
	}
	for _, tt := range tests {
		if got := levenshtein(tt.a, tt.b); got != tt.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
