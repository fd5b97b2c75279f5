package deploy

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const tutorial = "docs/tutorial.md"

// block is one fenced code block of the tutorial.
type block struct {
	lang string
	line int // of the opening fence
	text string
}

func tutorialBlocks(t *testing.T) []block {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, tutorial))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := parseBlocks(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return blocks
}

// parseBlocks returns the fenced code blocks of a Markdown text.
func parseBlocks(text string) ([]block, error) {
	var blocks []block
	var cur *block
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &block{lang: strings.TrimPrefix(line, "```"), line: n}
		case cur != nil && line == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("%s: the code block opened on line %d is never closed", tutorial, cur.line)
	}
	return blocks, nil
}

// commands returns the tutorial's shell commands, in reading order.
func commands(t *testing.T) []block {
	t.Helper()
	var out []block
	for _, b := range tutorialBlocks(t) {
		if b.lang == "sh" {
			out = append(out, b)
		}
	}
	if len(out) < 10 {
		t.Fatalf("%s has only %d sh blocks: the extraction no longer matches the document", tutorial, len(out))
	}
	return out
}

var (
	// An assignment at the start of a command: VAR=..., export VAR=...
	assignment = regexp.MustCompile(`(?m)(?:^|[;&|]\s*|\bexport\s+)([A-Za-z_][A-Za-z0-9_]*)=`)
	reference  = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)
	singleQuot = regexp.MustCompile(`'[^']*'`)
	repoPath   = regexp.MustCompile(`(?:^|[\s"=(])(?:\./)?((?:deploy|istio|cmd|docs|tools|internal|local|frontend|backend)/[A-Za-z0-9_./-]*[A-Za-z0-9_])`)
	goRun      = regexp.MustCompile(`go run (\./cmd/[a-z]+)((?:\s+(?:\\\n)?\s*-[a-z-]+(?:\s+(?:"[^"]*"|[^\s\\-][^\s\\]*))?)*)`)
	flagName   = regexp.MustCompile(`(?:^|\s)-([a-z][a-z-]*)`)
	flagDef    = regexp.MustCompile(`fs\.[A-Za-z]+(?:Var)?\((?:&[^,]+, )?"([a-z][a-z-]*)"`)
	profileArg = regexp.MustCompile(`skaffold (?:run|dev|build|render|delete)\b[^\n]*?\s-p\s+([a-z-]+)`)
)

// TestTutorialVariablesAreDefinedBeforeUse reads the commands as a reader
// pastes them, in order, and checks every variable is set before it is used:
// by an assignment in an earlier command, or by `source deploy/gcp/config.sh`.
func TestTutorialVariablesAreDefinedBeforeUse(t *testing.T) {
	defined := map[string]bool{"HOME": true, "PATH": true}
	configVars := shellVars(t, "tutorial-project")
	for _, b := range commands(t) {
		// Single-quoted text is not expanded by the shell ($e in a jq
		// program is jq's).
		text := singleQuot.ReplaceAllString(b.text, "''")
		// Within one block, an assignment counts for what follows it.
		for i, line := range strings.Split(text, "\n") {
			for _, m := range reference.FindAllStringSubmatch(line, -1) {
				if !defined[m[1]] {
					t.Errorf("%s:%d: $%s is used before any command sets it", tutorial, b.line+1+i, m[1])
				}
			}
			for _, m := range assignment.FindAllStringSubmatch(line, -1) {
				defined[m[1]] = true
			}
			if strings.Contains(line, "source deploy/gcp/config.sh") {
				for k := range configVars {
					defined[k] = true
				}
			}
		}
	}
}

func TestTutorialNamesFilesThatExist(t *testing.T) {
	seen := 0
	for _, b := range commands(t) {
		for _, m := range repoPath.FindAllStringSubmatch(b.text, -1) {
			seen++
			if _, err := os.Stat(filepath.Join(repoRoot, m[1])); err != nil {
				t.Errorf("%s: the command block on line %d names %s, which does not exist", tutorial, b.line, m[1])
			}
		}
	}
	if seen < 5 {
		t.Errorf("found only %d repository paths in the commands: the pattern no longer matches", seen)
	}
}

// TestTutorialUsesFlagsTheCommandsHave checks every `go run ./cmd/X -flag`
// against the flags X (and its library) define, and every skaffold -p against
// skaffold.yaml's profiles.
func TestTutorialUsesFlagsTheCommandsHave(t *testing.T) {
	var all strings.Builder
	for _, b := range commands(t) {
		all.WriteString(b.text)
	}
	text := all.String()
	// The troubleshooting section gives commands inline too.
	doc, err := os.ReadFile(filepath.Join(repoRoot, tutorial))
	if err != nil {
		t.Fatal(err)
	}
	runs := goRun.FindAllStringSubmatch(text+"\n"+string(doc), -1)
	if len(runs) < 2 {
		t.Fatalf("found %d `go run ./cmd/...` commands, want the certs and frontend ones", len(runs))
	}
	for _, m := range runs {
		flags := flagName.FindAllStringSubmatch(m[2], -1)
		if len(flags) == 0 {
			continue
		}
		defs := definedFlags(t, strings.TrimPrefix(m[1], "./cmd/"))
		for _, f := range flags {
			if !defs[f[1]] {
				t.Errorf("`go run %s` is given -%s, which it does not define (it has %v)", m[1], f[1], slices.Sorted(maps.Keys(defs)))
			}
		}
	}
	profiles := map[string]bool{}
	for _, p := range []string{"gke", "cloudrun", "local-cluster", "cloudrun-job"} {
		profileConfig(t, p) // fails if skaffold.yaml lacks it
		profiles[p] = true
	}
	for _, m := range profileArg.FindAllStringSubmatch(text, -1) {
		if !profiles[m[1]] {
			t.Errorf("the tutorial runs skaffold with profile %q, which skaffold.yaml does not have", m[1])
		}
	}
}

// definedFlags collects the flag names defined in cmd/<pkg> and in the
// library of the same name, where the mains keep their configuration.
func definedFlags(t *testing.T, pkg string) map[string]bool {
	t.Helper()
	defs := map[string]bool{}
	for _, dir := range []string{filepath.Join("cmd", pkg), pkg} {
		files, _ := filepath.Glob(filepath.Join(repoRoot, dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range flagDef.FindAllStringSubmatch(string(b), -1) {
				defs[m[1]] = true
			}
		}
	}
	if len(defs) == 0 {
		t.Fatalf("found no flag definitions for %s in cmd/%s or %s/", pkg, pkg, pkg)
	}
	return defs
}

// TestTutorialExpectedCountsMatchTheRepository checks step 1's expected
// output: how many lines of each file carry the project id once
// configure.sh has written it (into a copy of the repository).
func TestTutorialExpectedCountsMatchTheRepository(t *testing.T) {
	blocks := tutorialBlocks(t)
	const project = "tutorial-project"
	root := copyRepo(t)
	configure(t, root, t.TempDir(), "PROJECT_ID="+project)
	for i, b := range blocks {
		if b.lang != "sh" || !strings.Contains(b.text, "grep -c") {
			continue
		}
		if i+1 >= len(blocks) || blocks[i+1].lang != "text" {
			t.Fatalf("the grep -c block on line %d has no expected output after it", b.line)
		}
		for _, line := range strings.Split(strings.TrimSpace(blocks[i+1].text), "\n") {
			file, n, _ := strings.Cut(line, ":")
			want, err := strconv.Atoi(n)
			if err != nil {
				t.Fatalf("expected output line %q is not file:count", line)
			}
			content, err := os.ReadFile(filepath.Join(root, file))
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			for _, l := range strings.Split(string(content), "\n") {
				if strings.Contains(l, project) {
					got++
				}
			}
			if got != want {
				t.Errorf("after configure.sh %s has %d lines with the project id; the tutorial expects %d", file, got, want)
			}
		}
		return
	}
	t.Fatal("no grep -c command in the tutorial: step 1 changed, update this test")
}

// TestTutorialCommandsPassShellcheck treats the commands, in order, as one
// bash session and shellchecks it.
func TestTutorialCommandsPassShellcheck(t *testing.T) {
	shellcheck := needShellcheck(t)
	script := "#!/usr/bin/env bash\n"
	for _, b := range commands(t) {
		script += "# " + tutorial + ":" + strconv.Itoa(b.line) + "\n" + b.text
	}
	f := filepath.Join(t.TempDir(), "tutorial.sh")
	if err := os.WriteFile(f, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	// SC1091: config.sh is sourced by a path relative to the repository,
	// checked on its own by TestShellcheckEveryScript.
	cmd := exec.Command(shellcheck, "--exclude=SC1091", f)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("shellcheck of the tutorial's commands: %v\n%s\nscript:\n%s", err, out, script)
	}
}

// TestTutorialStepsNeedOnlyConfig is the promise of the introduction: in a
// new terminal, `source deploy/gcp/config.sh` gives every variable a later
// step uses. So each step (## section) may use only config.sh's variables
// and those its own commands set; none may rely on an earlier step's.
func TestTutorialStepsNeedOnlyConfig(t *testing.T) {
	configVars := shellVars(t, "tutorial-project")
	doc, err := os.ReadFile(filepath.Join(repoRoot, tutorial))
	if err != nil {
		t.Fatal(err)
	}
	steps := 0
	for _, section := range strings.Split(string(doc), "\n## ")[1:] {
		title, _, _ := strings.Cut(section, "\n")
		blocks, err := parseBlocks(section)
		if err != nil {
			t.Fatal(err)
		}
		defined := map[string]bool{"HOME": true, "PATH": true}
		for k := range configVars {
			defined[k] = true
		}
		for _, b := range blocks {
			if b.lang != "sh" {
				continue
			}
			steps++
			text := singleQuot.ReplaceAllString(b.text, "''")
			for _, line := range strings.Split(text, "\n") {
				for _, m := range reference.FindAllStringSubmatch(line, -1) {
					if !defined[m[1]] {
						t.Errorf("step %q uses $%s, which neither source deploy/gcp/config.sh nor the step itself sets", title, m[1])
					}
				}
				for _, m := range assignment.FindAllStringSubmatch(line, -1) {
					defined[m[1]] = true
				}
			}
		}
	}
	if steps < 10 {
		t.Fatalf("found %d sh blocks in ## sections: the split no longer matches the document", steps)
	}
	for _, v := range []string{"PROJECT_ID", "REGION", "FIREBASE_API_KEY", "IMAGE_REPO", "CERTS_DIR", "GATEWAY_IP"} {
		if _, ok := configVars[v]; !ok {
			t.Errorf("source deploy/gcp/config.sh does not set %s, which the steps use", v)
		}
	}
}

// TestTutorialShowsTheGatewayMatchesTheFrontendIdentity checks the expected
// output of the proxy-config check: the SPIFFE id of the principal the
// gateway's authorization policy names.
func TestTutorialShowsTheGatewayMatchesTheFrontendIdentity(t *testing.T) {
	blocks := tutorialBlocks(t)
	for i, b := range blocks {
		if b.lang != "sh" || !strings.Contains(b.text, "istioctl proxy-config listener") {
			continue
		}
		if !strings.Contains(b.text, "principal_name") {
			t.Errorf("the proxy-config command on line %d does not pick principal_name", b.line)
		}
		if i+1 >= len(blocks) || blocks[i+1].lang != "text" {
			t.Fatalf("the proxy-config command on line %d has no expected output", b.line)
		}
		if got, want := strings.TrimSpace(blocks[i+1].text), "spiffe://"+frontendIdentity; got != want {
			t.Errorf("the tutorial expects %q, but the gateway's policy names the principal %q", got, want)
		}
		return
	}
	t.Error("the tutorial has no istioctl proxy-config listener check of the gateway's principal")
}

// TestTutorialListsEveryPlatformRule checks the closing table names the
// documentation of every rule TestPlatformRules enforces.
func TestTutorialListsEveryPlatformRule(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, tutorial))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range platformRules {
		if !strings.Contains(string(doc), r.doc) {
			t.Errorf("the tutorial's table of platform rules lacks %s (%s)", r.doc, r.rule)
		}
	}
}
