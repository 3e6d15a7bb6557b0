package doccheck

import (
	"bytes"
	"context"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }

// moduleRoot is where README.md and docs/ live.
const moduleRoot = "../.."

// block is one fenced code block of a Markdown file.
type block struct {
	file string
	line int    // of the opening fence
	lang string // "go", "sh", "" ...
	text string
	// before is the prose between the previous block and this one.
	before string
}

func (b block) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// blocks returns the fenced code blocks of a Markdown file, in order.
func blocks(t *testing.T, path string) []block {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	rel, _ := filepath.Rel(moduleRoot, path)
	var out []block
	var cur *block
	var prose strings.Builder
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case cur == nil && strings.HasPrefix(line, "```"):
			cur = &block{file: rel, line: i + 1, lang: strings.TrimSpace(strings.TrimPrefix(line, "```")), before: prose.String()}
			prose.Reset()
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		default:
			prose.WriteString(line + "\n")
		}
	}
	require.Nil(t, cur, "%s: unterminated code block", rel)
	return out
}

// program is a complete Go program of the docs, with the output the docs
// show for it: the plain block that follows it, when the prose in between
// ends with "prints:".
type program struct {
	block
	want string // "" when the docs show no output
}

func docBlocks(t *testing.T) (programs []program, fragments []block) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(moduleRoot, "docs", "*.md"))
	require.NoError(t, err)
	files = append([]string{filepath.Join(moduleRoot, "README.md")}, files...)
	for _, f := range files {
		bs := blocks(t, f)
		for i, b := range bs {
			if b.lang != "go" {
				continue
			}
			if !strings.HasPrefix(strings.TrimSpace(b.text), "package main") {
				fragments = append(fragments, b)
				continue
			}
			p := program{block: b}
			if i+1 < len(bs) && bs[i+1].lang == "" && strings.HasSuffix(strings.TrimSpace(bs[i+1].before), "prints:") {
				p.want = bs[i+1].text
			}
			programs = append(programs, p)
		}
	}
	return programs, fragments
}

// TestDocFragments parses every Go fragment of the docs, as statements of a
// function body or as top-level declarations: no pseudo-code.
func TestDocFragments(t *testing.T) {
	t.Parallel()
	_, fragments := docBlocks(t)
	require.NotEmpty(t, fragments)
	for _, b := range fragments {
		fset := token.NewFileSet()
		_, errBody := parser.ParseFile(fset, b.String(), "package p\nfunc _() {\n"+b.text+"}\n", parser.SkipObjectResolution)
		if errBody == nil {
			continue
		}
		_, errDecl := parser.ParseFile(fset, b.String(), "package p\n"+b.text, parser.SkipObjectResolution)
		if errDecl != nil {
			t.Errorf("%s: Go fragment does not parse as statements (%v) nor as declarations (%v)", b, errBody, errDecl)
		}
	}
}

// TestDocPrograms builds every complete Go program of the docs and runs it
// against a fresh redis-server of its own, named by REDIS_ADDR: it must
// exit 0, write nothing to stderr and print what the docs show.
func TestDocPrograms(t *testing.T) {
	t.Parallel()
	programs, _ := docBlocks(t)
	require.NotEmpty(t, programs)
	root, err := filepath.Abs(moduleRoot)
	require.NoError(t, err)
	for _, p := range programs {
		t.Run(strings.ReplaceAll(p.String(), "/", "_"), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := filepath.Join(dir, "main.go")
			require.NoError(t, os.WriteFile(src, []byte(p.text), 0o644))
			bin := filepath.Join(dir, "prog")
			// Built from the module root, so the program uses this
			// checkout of the library; a program that imports a nested
			// module (contrib/...) is built in that module, whose replace
			// directive points at this checkout too.
			build := exec.Command("go", "build", "-o", bin, src)
			build.Dir = moduleDir(t, root, p)
			out, err := build.CombinedOutput()
			require.NoError(t, err, "%s: go build: %s", p, out)

			srv := redistest.NewServer(t, redistest.ServerOptions{})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Env = append(withoutRedisEnv(os.Environ()), "REDIS_ADDR="+srv.Addr())
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err = cmd.Run()
			require.NoError(t, ctx.Err(), "%s: still running after 30s; stdout:\n%s\nstderr:\n%s", p, stdout.String(), stderr.String())
			require.NoError(t, err, "%s: stdout:\n%s\nstderr:\n%s", p, stdout.String(), stderr.String())
			require.Empty(t, stderr.String(), "%s", p)
			// A program that prints something shows it in the docs, so the
			// reader knows what to expect (and the output is deterministic).
			require.Equal(t, p.want, stdout.String(), "%s: output differs from the one the docs show (a plain block after prose ending in \"prints:\")", p)
		})
	}
}

// moduleDir returns the directory of the module a docs program is built
// in: the nested module (a go.mod under contrib/) one of its imports
// belongs to, else the root.
func moduleDir(t *testing.T, root string, p program) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), p.String(), p.text, parser.ImportsOnly)
	require.NoError(t, err, "%s", p)
	mods, err := filepath.Glob(filepath.Join(root, "contrib", "*", "go.mod"))
	require.NoError(t, err)
	for _, mod := range mods {
		data, err := os.ReadFile(mod)
		require.NoError(t, err)
		var path string
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
				path = strings.Trim(strings.TrimSpace(rest), `"`)
				break
			}
		}
		require.NotEmpty(t, path, "%s: no module line", mod)
		for _, imp := range f.Imports {
			if ip := strings.Trim(imp.Path.Value, `"`); ip == path || strings.HasPrefix(ip, path+"/") {
				return filepath.Dir(mod)
			}
		}
	}
	return root
}

// withoutRedisEnv drops the variables that could point a program at
// another server than its own.
func withoutRedisEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "REDIS_ADDR=") || strings.HasPrefix(kv, "REDIS_URL=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}
