package lua

import (
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/syncfanout/syncfanout/internal/keys"
	"github.com/syncfanout/syncfanout/internal/sferr"
)

// TestRoomKeyIndicesMatchGo: room.lua's K_* indices are the positions at
// which keys.Layout.RoomKeys puts each key. Nothing else checks this: a
// script reading the wrong key fails only on the rule it breaks.
func TestRoomKeyIndicesMatchGo(t *testing.T) {
	want := map[string]int{
		"K_META": keys.KMeta, "K_MEM": keys.KMem, "K_SEEN": keys.KSeen,
		"K_ACK": keys.KAck, "K_OBS": keys.KObs, "K_STREAM": keys.KStream,
		"K_ROOMS": keys.KRooms, "K_DUE": keys.KDue, "K_STATS": keys.KStats,
		"K_Q0": keys.KQueue0, "K_INC": keys.KInc, "LEVELS": keys.Levels,
	}
	got := map[string]int{}
	// "local A, B = 1, 2" lines of room.lua that define K_* or LEVELS.
	assign := regexp.MustCompile(`^local ((?:K_\w+|LEVELS)(?:, (?:K_\w+|LEVELS))*) = ([\d, ]+)$`)
	for _, line := range strings.Split(mustRead("room.lua"), "\n") {
		m := assign.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		names, vals := strings.Split(m[1], ", "), strings.Split(m[2], ", ")
		require.Len(t, vals, len(names), line)
		for i, n := range names {
			v, err := strconv.Atoi(strings.TrimSpace(vals[i]))
			require.NoError(t, err, line)
			got[n] = v
		}
	}
	require.Equal(t, want, got)
}

// TestScriptStatusesMapToErrors: every status a script header lists is
// one sferr.FromStatus knows, and every sferr.Status* constant is listed by
// some script (a status no script returns is dead, or a header is out of
// date).
func TestScriptStatusesMapToErrors(t *testing.T) {
	listed := map[string][]string{} // status -> scripts whose header lists it
	names, err := fs.Glob(files, "*.lua")
	require.NoError(t, err)
	for _, name := range names {
		for _, st := range headerStatuses(mustRead(name)) {
			listed[st] = append(listed[st], name)
		}
	}
	require.NotEmpty(t, listed)
	for st, scripts := range listed {
		err := sferr.FromStatus(st)
		if st == sferr.StatusOK {
			require.NoError(t, err)
			continue
		}
		require.Error(t, err, "status %s (%v)", st, scripts)
		require.NotContains(t, err.Error(), "unexpected script status", "status %s listed by %v has no error in sferr", st, scripts)
	}
	var inGo []string
	for st := range goStatuses(t) {
		inGo = append(inGo, st)
		require.Contains(t, listed, st, "sferr status %s is listed by no script header", st)
	}
	var inLua []string
	for st := range listed {
		inLua = append(inLua, st)
	}
	sort.Strings(inGo)
	sort.Strings(inLua)
	require.Equal(t, inGo, inLua)
}

// headerStatuses returns the status codes in the "Returns:" part of a
// script's header (its leading comment): quoted codes ("OK" | "ALREADY")
// and the codes of an indented "status:" / "per-client status" list.
func headerStatuses(src string) []string {
	quoted := regexp.MustCompile(`"([A-Z][A-Z_]+)"`)
	code := regexp.MustCompile(`\b[A-Z][A-Z_]+\b`)
	var out []string
	inReturns, listIndent := false, -1
	for _, line := range strings.Split(src, "\n") {
		if !strings.HasPrefix(line, "--") {
			if inReturns {
				break // end of the header
			}
			continue
		}
		text := strings.TrimPrefix(line, "--")
		body := strings.TrimLeft(text, " ")
		indent := len(text) - len(body)
		if strings.HasPrefix(body, "Returns:") {
			inReturns = true
		}
		if !inReturns {
			continue
		}
		for _, m := range quoted.FindAllStringSubmatch(body, -1) {
			out = append(out, m[1])
		}
		switch {
		case strings.HasPrefix(body, "status:") || strings.HasPrefix(body, "per-client status"):
			listIndent = indent
			out = append(out, code.FindAllString(body[strings.Index(body, ":")+1:], -1)...)
		case listIndent >= 0 && indent > listIndent:
			out = append(out, code.FindAllString(body, -1)...)
		default:
			listIndent = -1
		}
	}
	return out
}

// goStatuses reads the Status* constants of internal/sferr from its source,
// so that a constant added there is checked without editing this test.
func goStatuses(t *testing.T) map[string]bool {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "../sferr/sferr.go", nil, 0)
	require.NoError(t, err)
	out := map[string]bool{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Status") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				require.True(t, ok, "sferr.%s is not a string literal", n.Name)
				out[constant.StringVal(constant.MakeFromLiteral(lit.Value, lit.Kind, 0))] = true
			}
		}
	}
	require.NotEmpty(t, out)
	return out
}
