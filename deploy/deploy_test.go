package deploy_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/syncfanout/syncfanout/internal/redistest"
	"github.com/syncfanout/syncfanout/metrics"
	"github.com/syncfanout/syncfanout/queue"
)

const (
	alertsFile    = "prometheus/alerts.yml"
	alertsTest    = "prometheus/alerts_test.yml"
	dashboardFile = "grafana/syncfanout.json"
	runbookDoc    = "../docs/metrics-and-debugging.md"
	runbookPath   = "docs/metrics-and-debugging.md"
)

// ruleFile is the part of a Prometheus rule file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	require.NoError(t, err)
	var rf ruleFile
	require.NoError(t, yaml.Unmarshal(b, &rf))
	require.NotEmpty(t, rf.Groups)
	return rf
}

// dashboard is the part of a Grafana dashboard the tests read; rows may
// nest panels.
type dashboard struct {
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Type    string  `json:"type"`
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr       string `json:"expr"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(b, &d))
	return d
}

// usedSeries maps each metric name that the rules and the dashboard's
// queries and variables name to where it is used.
func usedSeries(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	add := func(where, expr string) {
		names := metricNames(expr)
		require.NotEmpty(t, names, "%s: no metric in %q", where, expr)
		for _, n := range names {
			used[n] = append(used[n], where)
		}
	}
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			add("alert "+r.Alert, r.Expr)
		}
	}
	d := readDashboard(t)
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				add("panel "+p.Title, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		// label_values(metric, label): the second argument is a label.
		m := regexp.MustCompile(`^label_values\(\s*([^,]+),\s*\w+\s*\)$`).FindStringSubmatch(v.Definition)
		require.NotNil(t, m, "variable %s: want label_values(metric, label), got %q", v.Name, v.Definition)
		add("variable "+v.Name, m[1])
	}
	return used
}

var (
	promString  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promBraces  = regexp.MustCompile(`\{[^{}]*\}|\[[^\[\]]*\]`)
	promGroup   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promIdent   = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promKeyword = map[string]bool{
		"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true,
		"group_left": true, "group_right": true, "inf": true, "nan": true,
	}
)

// metricNames returns the metric names a PromQL expression selects: the
// identifiers left once strings, label matchers, ranges and grouping
// clauses are cut out, minus keywords and the names of functions and
// aggregations (those are followed by a parenthesis).
func metricNames(expr string) []string {
	s := promString.ReplaceAllString(expr, `""`)
	s = promBraces.ReplaceAllString(s, " ")
	s = promGroup.ReplaceAllString(s, " ")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		name := s[loc[0]:loc[1]]
		if loc[0] > 0 && strings.ContainsAny(s[loc[0]-1:loc[0]], "0123456789.$") {
			continue // the exponent or unit of a number, a $variable
		}
		if strings.HasPrefix(strings.TrimLeft(s[loc[1]:], " \t\n"), "(") || promKeyword[strings.ToLower(name)] {
			continue
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`histogram_quantile(0.99, sum by (le) (rate(x_bucket{instance=~"$instance"}[$__rate_interval])))`: {"x_bucket"},
		"max by (room) (a) > 120\nand on (room)\nmax by (room) (b) > 0":                                   {"a", "b"},
		`sum without (instance, pod) (rate(c{reason=~"timeout|ack-timeout"}[5m])) > 0.05`:                 {"c"},
		`absent(up_total)`: {"up_total"},
		`sum(rate(s_sum[5m])) / sum(rate(s_count[5m])) > 1e3 unless d offset 5m`: {"s_sum", "s_count", "d"},
	} {
		require.Equal(t, want, metricNames(expr), expr)
	}
}

// exported returns every series name the collectors (of a Queue and of a
// Worker) export once a room has members, a backlog and a message in
// flight and the worker delivered a message; a histogram gives its
// _bucket, _sum and _count series.
func exported(t *testing.T) map[string]bool {
	t.Helper()
	b := redistest.Standalone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q, err := queue.New(ctx, b.Client, queue.Options{Prefix: b.Prefix, ClientTimeout: time.Minute})
	require.NoError(t, err)
	t.Cleanup(func() { _ = q.Close() })
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewCollector(q, metrics.Options{}))

	s, err := q.Join(ctx, "lobby")
	require.NoError(t, err)
	for i := range 3 {
		_, err := q.Send(ctx, "lobby", i)
		require.NoError(t, err)
	}
	m, err := s.Next(ctx)
	require.NoError(t, err)
	require.NoError(t, m.Ack(ctx))
	_, err = s.Next(ctx) // the second message stays in flight
	require.NoError(t, err)

	// A worker delivering and acking one message makes its series exist,
	// latency included.
	delivered := make(chan *queue.Message, 1)
	w, err := q.NewWorker(queue.WorkerOptions{HandleMessage: func(_ context.Context, _ string, m *queue.Message) error {
		delivered <- m
		return nil
	}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = w.Close() })
	reg.MustRegister(metrics.NewWorkerCollector(w, metrics.Options{}))
	require.NoError(t, w.Subscribe(ctx, "gateway-client", "gateway"))
	_, err = q.Send(ctx, "gateway", "hello")
	require.NoError(t, err)
	select {
	case m := <-delivered:
		require.NoError(t, w.Ack(ctx, "gateway-client", m.AckToken))
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}

	mfs, err := reg.Gather()
	require.NoError(t, err)
	names := map[string]bool{}
	for _, mf := range mfs {
		if len(mf.GetMetric()) == 0 {
			continue
		}
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[mf.GetName()+suffix] = true
			}
			continue
		}
		names[mf.GetName()] = true
	}
	require.True(t, names["syncfanout_room_inflight_age_seconds"], "the activity must make every series exist")
	require.True(t, names["syncfanout_worker_latency_seconds"], "the activity must make every series exist")
	return names
}

// TestAlertsAndDashboardNameExportedSeries: a misspelled or removed
// series would leave an alert that never fires or an empty panel.
func TestAlertsAndDashboardNameExportedSeries(t *testing.T) {
	t.Parallel()
	have := exported(t)
	used := usedSeries(t)
	for name, where := range used {
		require.True(t, have[name], "%s is not exported by the collector; used by %s", name, strings.Join(where, ", "))
	}
	// The other way round, every series is on the dashboard.
	for name := range have {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if used[name] == nil && used[base+"_bucket"] == nil {
			t.Errorf("%s is exported but neither on the dashboard nor in the alerts", name)
		}
	}
}

func TestAlertRules(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(runbookDoc)
	require.NoError(t, err)
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " "); ok && strings.HasPrefix(line, "#") {
			anchors[githubAnchor(h)] = true
		}
	}
	link := regexp.MustCompile(regexp.QuoteMeta(runbookPath) + `#([A-Za-z0-9_-]+)`)
	n := 0
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			n++
			require.NotEmpty(t, r.Alert, "group %s: only alerting rules here", g.Name)
			require.Contains(t, []string{"info", "warning", "critical"}, r.Labels["severity"], r.Alert)
			require.NotEmpty(t, r.For, "%s: a for: keeps one bad scrape from paging", r.Alert)
			require.NotEmpty(t, r.Annotations["summary"], r.Alert)
			for _, key := range []string{"description", "runbook_url"} {
				m := link.FindStringSubmatch(r.Annotations[key])
				require.NotNil(t, m, "%s: %s must link to %s#section", r.Alert, key, runbookPath)
				require.True(t, anchors[m[1]], "%s: no section #%s in %s", r.Alert, m[1], runbookPath)
			}
		}
	}
	require.Positive(t, n)
}

// githubAnchor is the fragment GitHub gives a Markdown heading.
func githubAnchor(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestDashboard(t *testing.T) {
	t.Parallel()
	d := readDashboard(t)
	require.GreaterOrEqual(t, d.SchemaVersion, 39)
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			require.False(t, ids[p.ID], "panel id %d used twice", p.ID)
			ids[p.ID] = true
			if p.Type != "row" {
				require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				require.Equal(t, "${datasource}", tg.Datasource.UID, "panel %q must use the datasource variable", p.Title)
				require.Contains(t, tg.Expr, `instance=~"$instance"`, "panel %q must follow the instance variable", p.Title)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
}

// TestPromtool checks the rules and runs their unit tests with promtool
// (Debian's prometheus package ships it; scripts/ensure-promtool.sh
// installs it in CI).
func TestPromtool(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		hint := "promtool not found: install it (apt-get install -y prometheus, or bash scripts/ensure-promtool.sh as root)"
		if os.Getenv("CI") == "true" {
			t.Fatal(hint)
		}
		t.Skip(hint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, args := range [][]string{
		{"check", "rules", filepath.Base(alertsFile)},
		{"test", "rules", filepath.Base(alertsTest)},
	} {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Dir = filepath.Dir(alertsFile)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	}
}
