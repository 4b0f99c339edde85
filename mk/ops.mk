# Alert rules (ops/prometheus/healcache.rules.yml, explained in docs/runbook.md): `make test-alerts`
# checks them with promtool (Debian's `prometheus`, installed by .ci/setup-ops.sh when missing),
# runs their unit tests (a firing and a silent case per alert), then checks them against the
# Prometheus text of a real cache on a real redis-server (redis/tests/alert_rules.rs): every
# family they name is exported, and every alert has its runbook section. The Grafana dashboard
# (ops/grafana/healcache.json): promtool parses its queries, and the same test checks the
# families they name.
TEST_SUITES += test-alerts

PROMTOOL ?= promtool

.PHONY: test-alerts
test-alerts:
	@command -v $(PROMTOOL) >/dev/null || bash .ci/setup-ops.sh
	@command -v redis-server >/dev/null || bash .ci/setup-server.sh
	$(PROMTOOL) check rules ops/prometheus/healcache.rules.yml
	$(PROMTOOL) test rules ops/prometheus/healcache.rules.test.yml
	@mkdir -p target
	python3 ops/grafana/as_rules.py > target/dashboard.rules.yml
	$(PROMTOOL) check rules target/dashboard.rules.yml
	$(CARGO) test -p healcache-redis --release --test alert_rules
