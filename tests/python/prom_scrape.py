# Scrapes a Prometheus endpoint with Python's own HTTP client and parses it with the official
# client library's text parser (prometheus_client.parser). Each URL read on stdin is answered
# with one JSON line: {"series": {"name{k=v,...}" (or "name"): value}, "types": {"family": "type"}}, or
# {"error": "..."} when the scrape or the parse fails.
import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

for line in sys.stdin:
    url = line.strip()
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode("utf-8")
        series, types = {}, {}
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                series[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        print(json.dumps({"series": series, "types": types}), flush=True)
    except Exception as e:  # the test prints what went wrong
        print(json.dumps({"error": repr(e)}), flush=True)
