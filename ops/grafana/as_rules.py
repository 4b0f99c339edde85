"""Prints the queries of the Grafana dashboard (healcache.json, beside this file) as a Prometheus
rules file, one recording rule per query with the `$cache` variable as `.*`, so that
`promtool check rules` parses every query the dashboard sends (`make test-alerts`)."""
import json
import sys
from pathlib import Path

dash = json.loads((Path(__file__).parent / "healcache.json").read_text())
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
if not exprs:
    sys.exit("the dashboard has no queries")
print("groups:\n  - name: dashboard\n    rules:")
for i, e in enumerate(exprs):
    print(f"      - record: dashboard:query{i}\n        expr: {json.dumps(e.replace('$cache', '.*'))}")
