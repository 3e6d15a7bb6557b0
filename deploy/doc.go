// Package deploy holds no code. Its directory ships the Prometheus alerting
// rules (prometheus/alerts.yml, with promtool unit tests in
// prometheus/alerts_test.yml) and the Grafana dashboard
// (grafana/syncfanout.json) for package metrics; its tests check that every
// series they name is one the collector exports, that their runbook links
// point at existing sections of docs/metrics-and-debugging.md, and run
// promtool on the rules.
package deploy
