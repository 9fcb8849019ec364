#!/usr/bin/env python3
"""Generates demo-arena.event.json: a 15,000-seat indoor arena set up for a
K-pop concert (end stage, standing floor, lower and upper bowl).

Run from this folder: python3 gen-demo-arena.py > demo-arena.event.json
"""
import json
import math

STAGE = (0.0, 0.0)  # the stage is at the origin; the bowl opens towards +y


def seated(section_id, name, angle_deg, rows, seats_per_row, radius0, categories):
    """A wedge of the bowl centred on angle_deg, rows nearest the stage first."""
    a = math.radians(angle_deg)
    ux, uy = math.sin(a), math.cos(a)          # from the stage outwards
    tx, ty = math.cos(a), -math.sin(a)         # along the row
    out = []
    for r in range(rows):
        radius = radius0 + 1.0 * r
        cx, cy = STAGE[0] + ux * radius, STAGE[1] + uy * radius
        half = (seats_per_row - 1) * 0.55 / 2
        out.append({
            "label": str(r + 1),
            "seats": seats_per_row,
            "category": categories(r + 1),
            "x": round(cx - tx * half, 2),
            "y": round(cy - ty * half, 2),
            "dx": round(tx * 0.55, 3),
            "dy": round(ty * 0.55, 3),
        })
    return {"id": section_id, "name": name, "rows": out}


def main():
    sections = [{
        "id": "FLOOR", "name": "Floor (standing)", "category": "VIP",
        # The floor between the stage and the lower bowl's first rows.
        "standing": {"capacity": 2500,
                     "area": {"x": -40.0, "y": 4.0, "width": 80.0, "height": 42.0}},
    }]
    lower = "ABCDEFGHIJ"
    upper = "KLMNOPQRST"
    for i, s in enumerate(lower):
        angle = -81 + i * 18
        sections.append(seated(s, f"Lower bowl {s}", angle, 20, 36, 65.0,
                               lambda row: "R" if row <= 10 else "S"))
    for i, s in enumerate(upper):
        angle = -81 + i * 18
        sections.append(seated(s, f"Upper bowl {s}", angle, 26, 30, 89.0,
                               lambda row: "A"))
    event = {
        "format": "boxoffice.event/1",
        "id": "demo",
        "name": "Fan-club presale: Seoul encore night",
        "starts_at": "2026-12-24T10:00:00Z",
        "currency": "KRW",
        "hold_ttl_secs": 420,
        "seats_per_hold_max": 4,
        "categories": [
            {"id": "VIP", "name": "VIP standing", "price": 198000},
            {"id": "R", "name": "R seat", "price": 165000},
            {"id": "S", "name": "S seat", "price": 143000},
            {"id": "A", "name": "A seat", "price": 110000},
        ],
        "venue": {"name": "Seoul Olympic Arena (demo layout)", "time_zone": "Asia/Seoul",
                  "stage": {"x": -24.0, "y": -8.0, "width": 48.0, "height": 8.0},
                  "sections": sections},
    }
    print(json.dumps(event, indent=1))


if __name__ == "__main__":
    main()
