"""The bench report: ratios, a markdown table, JSON, and a dependency-free PNG bar chart.

The chart is written by a tiny PNG encoder (``zlib`` + ``struct``), so the benchmark needs
no plotting library: bars of perdure/Restate throughput ratio per workload x deployment
at each concurrency level (blue shades) and the p50 latency ratio at concurrency 1 (orange,
Restate/perdure so that higher is better for every bar), with grey lines at 1.0 and the
1.2 target. The figure's legend is in the JSON (``chart``) and the table.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

MIB = 2**20


def _level(cell: dict[str, Any] | None, c: int) -> dict[str, Any] | None:
    if not cell:
        return None
    return next((lv for lv in cell.get("levels", []) if lv["concurrency"] == c), None)


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b not in (None, 0) else None


def _compare(p: dict[str, Any], r: dict[str, Any], levels: list[int]) -> dict[str, Any]:
    """Ratios of cell ``p`` to cell ``r`` (throughput: higher is better for ``p``; latency,
    CPU, RSS, recovery time: lower is better for ``p``)."""
    row: dict[str, Any] = {}
    if p.get("levels"):
        for c in levels:
            pl, rl = _level(p, c), _level(r, c)
            if pl and rl:
                row[f"throughput_c{c}"] = _div(pl["throughput"], rl["throughput"])
                row[f"p50_c{c}"] = _div(pl["p50_ms"], rl["p50_ms"])
                row[f"p99_c{c}"] = _div(pl["p99_ms"], rl["p99_ms"])
                row[f"cpu_per_1000_c{c}"] = _div(
                    pl["server_cpu_s_per_1000"], rl["server_cpu_s_per_1000"]
                )
    elif p.get("result") and r.get("result"):
        pr, rr = p["result"], r["result"]
        row["throughput"] = _div(pr["throughput"], rr["throughput"])
        if "lateness_p50_ms" in pr:
            row["peak_rss"] = _div(pr["server_peak_rss"], rr["server_peak_rss"])
            row["cpu_per_1000"] = _div(pr["server_cpu_s_per_1000"], rr["server_cpu_s_per_1000"])
        else:
            row["recovery_s"] = _div(pr["recovery_s"], rr["recovery_s"])
    return row


def native_engines(data: dict[str, Any]) -> list[str]:
    """Engines that ran as deployment ``native`` (Temporal, DBOS), in run order."""
    return [
        e
        for e in data["meta"]["engines"]
        if any(c["engine"] == e and c["deployment"] == "native" for c in data["cells"].values())
    ]


def perdure_reference(data: dict[str, Any]) -> str | None:
    """The perdure deployment compared with the native engines: perdure's own SDK if it
    ran, else the official SDK (both on the perdure server)."""
    deps = data["meta"]["deployments"]
    return "perdure" if "perdure" in deps else (deps[0] if deps else None)


def ratios(data: dict[str, Any]) -> dict[str, Any]:
    """perdure / Restate per workload x deployment (key ``<wl>/<deployment>``), and perdure
    (its reference deployment) / each native engine (key ``<wl>/vs-<engine>``)."""
    cells, out = data["cells"], {}
    levels = data["meta"]["levels"]
    ref = perdure_reference(data)
    natives = native_engines(data)
    for wl in data["meta"]["workloads"]:
        for dep in data["meta"]["deployments"]:
            p, r = cells.get(f"{wl}/{dep}/perdure"), cells.get(f"{wl}/{dep}/restate")
            if p and r:
                out[f"{wl}/{dep}"] = _compare(p, r, levels)
        p = cells.get(f"{wl}/{ref}/perdure")
        for eng in natives:
            n = cells.get(f"{wl}/native/{eng}")
            if p and n:
                out[f"{wl}/vs-{eng}"] = _compare(p, n, levels)
    eng = data["engines"]
    if eng.get("perdure", {}).get("idle_rss") and eng.get("restate", {}).get("idle_rss"):
        out["idle_rss"] = _div(eng["perdure"]["idle_rss"], eng["restate"]["idle_rss"])
        out["startup"] = _div(eng["perdure"]["startup_s"], eng["restate"]["startup_s"])
    for other in natives:
        if eng.get("perdure", {}).get("idle_rss") and eng.get(other, {}).get("idle_rss"):
            out[f"idle_rss_vs_{other}"] = _div(eng["perdure"]["idle_rss"], eng[other]["idle_rss"])
            out[f"startup_vs_{other}"] = _div(eng["perdure"]["startup_s"], eng[other]["startup_s"])
    return out


def _f(v: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def _ratio_row(label: str, r: dict[str, Any], levels: list[int]) -> str:
    """A table row of ratios: throughput at each level, p50/p99 at the lowest and highest,
    server CPU per 1,000 at the middle one."""
    return (
        f"| {label} | "
        + " | ".join(f"**{_f(r.get(f'throughput_c{c}'))}x**" for c in levels)
        + f" | {_f(r.get(f'p50_c{levels[0]}'))} | {_f(r.get(f'p99_c{levels[0]}'))}"
        f" | {_f(r.get(f'p50_c{levels[-1]}'))} | {_f(r.get(f'p99_c{levels[-1]}'))}"
        f" | {_f(r.get(f'cpu_per_1000_c{levels[len(levels) // 2]}'))} | | |"
    )


def table(data: dict[str, Any]) -> str:
    meta, cells, rat = data["meta"], data["cells"], data["ratios"]
    levels = meta["levels"]
    titles = data["workload_titles"]
    engines = meta["engines"]
    natives = native_engines(data)
    ref = perdure_reference(data)
    deps = list(meta["deployments"]) + (["native"] if natives else [])
    versions = meta.get("engine_versions") or {}
    lines = [
        f"perdure vs Restate ({meta.get('restate_version')})"
        + (
            f" and {', '.join(natives)} ({', '.join(f'{k} {v}' for k, v in versions.items())})"
            if natives
            else ""
        )
        + f", {meta['cpus']} CPUs, "
        f"{meta['duration_s']} s per level, load avg before/after "
        f"{meta['loadavg_before'][0]:.2f}/{meta['loadavg_after'][0]:.2f}"
        + (" [QUICK: numbers meaningless]" if meta["quick"] else "")
        + (
            f"; Temporal workload 2 with {meta.get('temporal_steps', 'activity')} activities"
            if "temporal" in natives
            else ""
        ),
        "",
        "Engines: "
        + "; ".join(
            f"{n}: start-up {_f(e['startup_s'], '{:.2f}')} s, idle RSS "
            f"{_f(e['idle_rss'] and e['idle_rss'] / MIB, '{:.0f}')} MiB"
            + (
                f", restart after SIGKILL {', '.join(f'{x:.2f}' for x in e['restart_s'])} s"
                if e["restart_s"]
                else ""
            )
            + (f", initdb {e['initdb_s']:.2f} s (not in start-up)" if e.get("initdb_s") else "")
            + (f", FAILED TO START: {e['error'][:300]}" if e.get("error") else "")
            for n, e in data["engines"].items()
        ),
        "",
    ]
    head = "| workload | SDK | engine | " + " | ".join(f"req/s c={c}" for c in levels)
    head += (
        f" | p50 ms c={levels[0]} | p99 ms c={levels[0]} | p50 ms c={levels[-1]} | "
        f"p99 ms c={levels[-1]} | server CPU s/1k inv c={levels[len(levels) // 2]} "
        f"| CPU % server/service c={levels[len(levels) // 2]} | peak RSS MiB |"
    )
    lines += [head, "|" + "---|" * (head.count("|") - 1)]
    closed = [
        w
        for w in meta["workloads"]
        if any(cells.get(f"{w}/{d}/{e}", {}).get("levels") for d in deps for e in engines)
    ]
    for wl in closed:
        for dep in deps:
            for eng in engines:
                cell = cells.get(f"{wl}/{dep}/{eng}")
                if not cell:
                    continue
                lo, hi = _level(cell, levels[0]), _level(cell, levels[-1])
                mid = _level(cell, levels[len(levels) // 2])
                cpu = mid and mid["server_cpu_s_per_1000"]
                peak = max((lv["server_peak_rss"] for lv in cell["levels"]), default=None)
                lines.append(
                    f"| {wl} {titles[wl]} | {dep} | {eng} | "
                    + " | ".join(
                        _f(lv and lv["throughput"], "{:.0f}")
                        for lv in (_level(cell, c) for c in levels)
                    )
                    + f" | {_f(lo and lo['p50_ms'])} | {_f(lo and lo['p99_ms'])}"
                    f" | {_f(hi and hi['p50_ms'])} | {_f(hi and hi['p99_ms'])}"
                    f" | {_f(cpu, '{:.3f}')} | {_f(mid and mid.get('server_cpu_util'), '{:.0%}')}"
                    f"/{_f(mid and mid.get('service_cpu_util'), '{:.0%}')}"
                    f" | {_f(peak and peak / MIB, '{:.0f}')} |"
                )
            r = rat.get(f"{wl}/{dep}")
            if r:
                lines.append(_ratio_row(f"{wl} | {dep} | **perdure/Restate**", r, levels))
            if dep != "native":
                continue
            for other in natives:
                r = rat.get(f"{wl}/vs-{other}")
                if r:
                    lines.append(_ratio_row(f"{wl} | {ref} vs native | **perdure/{other}**", r, levels))
    # per-step latency (workload 2 at the lowest level, minus nothing: an upper bound)
    for dep in deps:
        for eng in engines:
            lv = _level(cells.get(f"2/{dep}/{eng}"), levels[0])
            nl = _level(cells.get(f"1/{dep}/{eng}"), levels[0])
            if lv and lv["p50_ms"] is not None:
                extra = ""
                if nl and nl["p50_ms"] is not None:
                    extra = (
                        f", (p50(w2) - p50(w1)) / 10 = {(lv['p50_ms'] - nl['p50_ms']) / 10:.3f} ms"
                    )
                lines.append(
                    f"\nper-step p50 at c={levels[0]}, {dep} SDK on {eng}: "
                    f"p50(w2)/10 = {lv['p50_ms'] / 10:.3f} ms{extra}"
                )
    others = [w for w in meta["workloads"] if w not in closed]
    if others:
        lines += ["", "| workload | SDK | engine | result |", "|---|---|---|---|"]
        for wl in others:
            for dep in deps:
                for eng in engines:
                    cell = cells.get(f"{wl}/{dep}/{eng}")
                    if cell is None:  # not run: an engine that failed to start, or "native"
                        continue
                    r = cell.get("result")
                    if not r:
                        lines.append(
                            f"| {wl} {titles[wl]} | {dep} | {eng} | ERROR {cell.get('errors')} |"
                        )
                        continue
                    if "lateness_p50_ms" in r:
                        desc = (
                            f"{r['invocations']} sleeps: all done in {r['wall_s']:.2f} s "
                            f"(submit {r['submit_s']:.2f} s); lateness p50 "
                            f"{r['lateness_p50_ms']:.0f} ms p99 {r['lateness_p99_ms']:.0f} ms; "
                            f"RSS {r['server_rss_before'] / MIB:.0f} -> peak "
                            f"{r['server_peak_rss'] / MIB:.0f} MiB "
                            f"({r['rss_per_sleeping_invocation'] / 1024:.1f} KiB/inv); "
                            f"CPU {r['server_cpu_s_per_1000']:.2f} s/1k"
                        )
                    else:
                        desc = (
                            f"{r['invocations']} in flight, SIGKILL: restart "
                            f"{r['restart_s']:.2f} s, all complete {r['recovery_s']:.2f} s "
                            f"after the kill"
                        )
                    lines.append(f"| {wl} {titles[wl]} | {dep} | {eng} | {desc} |")
            for other in natives:
                r = rat.get(f"{wl}/vs-{other}")
                if r:
                    parts = [f"throughput {_f(r.get('throughput'))}x"]
                    if "recovery_s" in r:
                        parts.append(f"time to recover {_f(r.get('recovery_s'))}x")
                    else:
                        parts.append(f"peak RSS {_f(r.get('peak_rss'))}x")
                        parts.append(f"CPU/1k {_f(r.get('cpu_per_1000'))}x")
                    lines.append(
                        f"| {wl} | {ref} vs native | **perdure/{other}** | {', '.join(parts)} |"
                    )
    errs = {k: c["errors"] for k, c in cells.items() if c["errors"]}
    if errs:
        lines += ["", "ERRORS:"] + [f"  {k}: {v[:3]}" for k, v in errs.items()]
    lines.append("")
    lines.append(
        f"ratios: idle RSS perdure/Restate {_f(rat.get('idle_rss'))}, "
        f"start-up {_f(rat.get('startup'))}"
        + "".join(
            f"; perdure/{o}: idle RSS {_f(rat.get(f'idle_rss_vs_{o}'))}, "
            f"start-up {_f(rat.get(f'startup_vs_{o}'))}"
            for o in natives
        )
    )
    return "\n".join(lines)


def write_json(data: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


# ------------------------------------------------------------------ dependency-free PNG

_COLOURS = [(31, 119, 180), (70, 150, 210), (140, 190, 230), (255, 127, 14)]
_FONT = {  # 3x5 glyphs, rows top to bottom, 3 bits each
    "0": "111101101101111",
    "1": "010110010010111",
    "2": "111001111100111",
    "3": "111001111001111",
    "4": "101101111001001",
    "5": "111100111001111",
    "6": "111100111101111",
    "7": "111001001001001",
    "8": "111101111101111",
    "9": "111101111001111",
    ".": "000000000000010",
    "o": "000111101101111",
    "p": "111101111100100",
    " ": "000000000000000",
    "x": "000101010101000",
    "t": "010111010010011",
    "d": "001001111101111",
}


def _png(width: int, height: int, pixels: bytearray) -> bytes:
    def chunk(tag: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + tag
            + body
            + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)
        )

    raw = b"".join(
        b"\x00" + bytes(pixels[y * width * 3 : (y + 1) * width * 3]) for y in range(height)
    )
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def write_png(data: dict[str, Any], path: Path) -> None:
    meta, rat = data["meta"], data["ratios"]
    groups = []
    for wl in meta["workloads"]:
        for dep in meta["deployments"]:
            r = rat.get(f"{wl}/{dep}")
            if not r or f"throughput_c{meta['levels'][0]}" not in r:
                continue
            bars = [r.get(f"throughput_c{c}") for c in meta["levels"]]
            p50 = r.get(f"p50_c{meta['levels'][0]}")
            bars.append(1 / p50 if p50 else None)
            groups.append((f"{wl}{'o' if dep == 'official' else 'p'}", bars))
        for other in native_engines(data):
            r = rat.get(f"{wl}/vs-{other}")
            if not r or f"throughput_c{meta['levels'][0]}" not in r:
                continue
            bars = [r.get(f"throughput_c{c}") for c in meta["levels"]]
            p50 = r.get(f"p50_c{meta['levels'][0]}")
            bars.append(1 / p50 if p50 else None)
            groups.append((f"{wl}{other[0]}", bars))
    # Capped at 4x: the ratios against Temporal / DBOS would otherwise flatten the
    # perdure/Restate bars (taller bars are clipped; the table has the numbers).
    scale_max = min(4.0, max([2.0] + [b for _, bs in groups for b in bs if b is not None]))
    bar_w, gap, left, bottom, top = 10, 14, 30, 20, 10
    n = max(1, len(groups))
    nb = len(meta["levels"]) + 1
    width = left + n * (nb * bar_w + gap) + gap
    height = 240
    plot_h = height - bottom - top
    px = bytearray(b"\xff" * width * height * 3)

    def put(x: int, y: int, c: tuple[int, int, int]) -> None:
        if 0 <= x < width and 0 <= y < height:
            i = (y * width + x) * 3
            px[i : i + 3] = bytes(c)

    def rect(x0: int, y0: int, x1: int, y1: int, c: tuple[int, int, int]) -> None:
        for y in range(min(y0, y1), max(y0, y1)):
            for x in range(x0, x1):
                put(x, y, c)

    def text(x: int, y: int, s: str, c=(0, 0, 0), k: int = 2) -> None:
        for ch in s:
            g = _FONT.get(ch, _FONT[" "])
            for j, bit in enumerate(g):
                if bit == "1":
                    rect(
                        x + (j % 3) * k,
                        y + (j // 3) * k,
                        x + (j % 3 + 1) * k,
                        y + (j // 3 + 1) * k,
                        c,
                    )
            x += 4 * k

    def y_of(v: float) -> int:
        return top + plot_h - int(plot_h * min(v, scale_max) / scale_max)

    for ref, colour in ((1.0, (120, 120, 120)), (1.2, (200, 60, 60))):
        rect(left, y_of(ref), width, y_of(ref) + 1, colour)
        text(2, y_of(ref) - 5, f"{ref:.1f}", colour, 1)
    text(2, top, f"{scale_max:.1f}", (0, 0, 0), 1)
    rect(left, top + plot_h, width, top + plot_h + 1, (0, 0, 0))
    x = left + gap
    for label, bars in groups:
        for i, b in enumerate(bars):
            if b is not None:
                rect(
                    x + i * bar_w,
                    y_of(b),
                    x + (i + 1) * bar_w - 1,
                    top + plot_h,
                    _COLOURS[3] if i == len(bars) - 1 else _COLOURS[min(i, 2)],
                )
        text(x + 4, top + plot_h + 5, label)
        x += nb * bar_w + gap
    path.write_bytes(_png(width, height, px))
    data["chart"] = {
        "file": path.name,
        "groups": [g for g, _ in groups],
        "group_label": "workload number + o (official SDK) / p (perdure SDK): perdure vs "
        "Restate; + t / d: perdure (perdure SDK) vs Temporal / DBOS",
        "bars": [f"throughput ratio c={c}" for c in meta["levels"]]
        + [f"p50 ratio other/perdure c={meta['levels'][0]}"],
        "lines": "grey 1.0, red 1.2 target; y axis capped at the top label",
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.report RESULTS.json``: print the table again, rewrite the PNG."""
    import sys

    path = Path((argv or sys.argv[1:])[0])
    data = json.loads(path.read_text())
    data["workload_titles"] = {int(k): v for k, v in data["workload_titles"].items()}
    data["ratios"] = ratios(data)
    print(table(data))
    write_png(data, path.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
