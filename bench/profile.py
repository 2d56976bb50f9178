"""Profile the perdure server under a bench workload with py-spy; print the hot spots.

    .venv/bin/python -m bench.profile [--workload 1] [--concurrency 32] [--duration 15]
                                      [--deployment official] [--native] [--output DIR]

Starts a perdure server and one service process (as ``python -m bench`` does), drives the
closed-loop workload from this process, and samples the *server* with
``py-spy record --format raw`` (collapsed stacks; ``pip install py-spy``) for the whole
measured window. Writes ``<output>/profile-w<N>-c<C>.txt`` (collapsed stacks, loadable in
speedscope / flamegraph.pl) and prints the top functions by self and by inclusive samples,
as percentages of all samples (idle samples included unless ``--no-idle``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .engines import Engine, start_service
from .run import RESULTS_DIR
from .workloads import closed_level


def summarise(collapsed: Path, top: int = 25) -> str:
    self_c: collections.Counter[str] = collections.Counter()
    incl_c: collections.Counter[str] = collections.Counter()
    file_c: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = [
            f
            for f in stack.split(";")
            if not f.startswith("process ") and not f.startswith("thread ")
        ]
        if frames:
            self_c[frames[-1]] += count
            for f in set(frames):
                incl_c[f] += count
            # the module of the leaf: "func (path/to/file.py:123)" -> path/to/file.py
            leaf = frames[-1]
            file_c[leaf[leaf.rfind("(") + 1 :].split(":")[0] if "(" in leaf else leaf] += count
    if not total:
        return "no samples"

    def shorten(f: str) -> str:
        for marker in ("site-packages/", "src/", "lib/python3"):
            i = f.find(marker)
            if i >= 0:
                j = f.rfind("(", 0, i)
                return f[: j + 1] + f[i + len(marker) :] if j >= 0 else f
        return f

    out = [f"{total} samples", "", "top self (leaf) frames:"]
    out += [f"  {c / total:6.1%}  {shorten(f)}" for f, c in self_c.most_common(top)]
    out += ["", "top files by self samples:"]
    out += [f"  {c / total:6.1%}  {shorten('(' + f)[1:]}" for f, c in file_c.most_common(15)]
    out += ["", "top inclusive frames:"]
    out += [f"  {c / total:6.1%}  {shorten(f)}" for f, c in incl_c.most_common(top)]
    return "\n".join(out)


async def _drive(engine: Engine, args: argparse.Namespace, out: Path) -> dict:
    await closed_level(engine, args.workload, args.deployment, args.concurrency, 0, 1.0)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    cmd = [
        pyspy,
        "record",
        "--pid",
        str(engine.pid),
        "--format",
        "raw",
        "-o",
        str(out),
        "--duration",
        str(int(args.duration) + 1),
        "--rate",
        str(args.rate),
    ]
    if not args.no_idle:
        cmd.append("--idle")
    if args.native:
        cmd.append("--native")
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    await asyncio.sleep(0.5)
    r = await closed_level(
        engine, args.workload, args.deployment, args.concurrency, args.duration, 0
    )
    err = (await asyncio.get_running_loop().run_in_executor(None, spy.communicate))[1]
    if spy.returncode:
        raise RuntimeError(f"py-spy failed: {err.decode()[-2000:]}")
    return r


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile")
    p.add_argument("--workload", type=int, default=1, choices=(1, 2, 3, 4))
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--deployment", default="official", choices=("official", "perdure"))
    p.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    p.add_argument("--native", action="store_true", help="include native (C) frames")
    p.add_argument("--no-idle", action="store_true", help="drop idle samples")
    p.add_argument("--output", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    out = args.output / f"profile-w{args.workload}-c{args.concurrency}.txt"
    with tempfile.TemporaryDirectory(prefix="perdure-bench-profile-") as tmp:
        base = Path(tmp)
        svc = start_service(args.deployment, base / "svc")
        engine = Engine("perdure", base / "perdure").start()
        try:
            svc.register_on(engine.server)
            r = asyncio.run(_drive(engine, args, out))
        finally:
            engine.stop()
            svc.stop()
    print(
        f"workload {args.workload}, c={args.concurrency}, {args.deployment} SDK: "
        f"{r['throughput']:.0f} req/s, p50 {r['p50_ms']:.2f} ms, "
        f"server CPU {r['server_cpu_s']:.1f} s in {r['wall_s']:.1f} s "
        f"({r['server_cpu_s'] / r['wall_s']:.0%} of one core), errors {r['error_count']}"
    )
    print(summarise(out))
    print(f"\ncollapsed stacks: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
