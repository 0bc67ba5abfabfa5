// Package ops holds what an operator deploys beside the binary: Prometheus alert rules and their unit
// tests (prometheus/), a Grafana dashboard (grafana/) and a systemd unit (systemd/); the Dockerfile is at
// the repository root. The package has no code: its tests check these files against the binary (the
// metrics it exports, the flags it takes) and run promtool on the rules.
package ops
