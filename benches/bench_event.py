"""The benches' event: 1,000,000 seats (20 sections of 100 rows of 500),
one category at price 1, so no run sells out. Prints the
boxoffice.event/1 document; benches/flash_sale.sh, benches/overload.sh
and benches/http/run.sh create it."""
import json

sections = [{"id": f"S{i:02d}", "name": f"Section {i}", "category": "R",
             "rows": [{"label": str(r + 1), "seats": 500, "x": 0.0, "y": float(r)} for r in range(100)]}
            for i in range(1, 21)]
print(json.dumps({"format": "boxoffice.event/1", "id": "bench", "name": "Bench", "starts_at": "2026-12-24T10:00:00Z",
                  "currency": "KRW", "hold_ttl_secs": 3600, "seats_per_hold_max": 4,
                  "categories": [{"id": "R", "name": "R", "price": 1}],
                  "venue": {"name": "Bench hall", "sections": sections}}))
