"""``python -m verify``: the verification runner's command line (see ``verify/__init__.py``)."""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from verify.runner import FAULT_KINDS, SERVICE_MODULES, RunConfig, run_sync  # noqa: E402

# `--ci`: the run CI makes on every push, about 2.5 minutes in all: a 120 s fault phase whose
# schedule (crash interval 8 s: first crash within 8 s, then gaps of at most 12 s) always
# holds at least 10 server SIGKILLs, then drain, oracle and log replay. Eight keys per layer
# and twelve programs in flight keep the inboxes busy.
CI = dict(keys=8, programs=380, duration=120.0, crash_interval=8.0, concurrency=12,
          sdk="perdure", faults=FAULT_KINDS, min_server_crashes=5)


def parse_faults(text: str) -> tuple[str, ...]:
    if text in ("", "none"):
        return ()
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown fault kind(s) {unknown}; choose among {', '.join(FAULT_KINDS)} or none")
    return kinds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m verify",
        description="Random programs on virtual objects under server/service crashes and "
                    "connection faults, checked against a model and the invariants of "
                    "architecture.md. A failing seed reproduces.")
    p.add_argument("--keys", type=int, default=20, help="keys per layer of objects (20)")
    p.add_argument("--programs", type=int, default=300, help="top-level programs (300)")
    p.add_argument("--duration", type=float, default=150.0, help="fault phase, seconds (150)")
    p.add_argument("--crash-interval", type=float, default=8.0,
                   help="mean seconds between server SIGKILLs (8)")
    p.add_argument("--seed", type=int, default=None, help="workload and fault seed (random)")
    p.add_argument("--sdk", choices=sorted(SERVICE_MODULES), default="perdure",
                   help="SDK the services are written with (perdure)")
    p.add_argument("--faults", type=parse_faults, default=FAULT_KINDS,
                   help="comma list of server,service,proxy, or none (all)")
    p.add_argument("--layers", type=int, default=3, help="layers of objects, 1-4 (3)")
    p.add_argument("--concurrency", type=int, default=8, help="programs in flight (8)")
    p.add_argument("--proxy-interval", type=float, default=None,
                   help="mean seconds between proxy faults (crash interval / 4)")
    p.add_argument("--drain-timeout", type=float, default=120.0,
                   help="seconds allowed after the faults for everything to finish (120)")
    p.add_argument("--http1", action="store_true",
                   help="register the deployment for HTTP/1.1 request/response (HTTP/2)")
    p.add_argument("--live-tree", action="store_true",
                   help="run src/perdure as it is, instead of a copy taken at the start (a copy)")
    p.add_argument("--min-server-crashes", type=int, default=0,
                   help="fail the run if the server was SIGKILLed fewer times (0)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="where data, logs and events go (a temp dir, removed on success)")
    p.add_argument("--keep", action="store_true", help="keep the work dir on success")
    p.add_argument("--ci", action="store_true",
                   help="the CI run: " + ", ".join(f"{k}={v}" for k, v in CI.items()
                                                   if k != "faults") + ", all faults")
    args = p.parse_args(argv)
    if not 1 <= args.layers <= 4:
        p.error("--layers must be between 1 and 4")
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    cfg = RunConfig(seed=seed, keys=args.keys, programs=args.programs, duration=args.duration,
                    crash_interval=args.crash_interval, sdk=args.sdk, faults=args.faults,
                    layers=args.layers, concurrency=args.concurrency,
                    proxy_interval=args.proxy_interval, drain_timeout=args.drain_timeout,
                    workdir=args.workdir, keep=args.keep,
                    min_server_crashes=args.min_server_crashes, http1=args.http1,
                    snapshot=not args.live_tree)
    if args.ci:
        for k, v in CI.items():
            setattr(cfg, k, v)
    return run_sync(cfg)


if __name__ == "__main__":
    sys.exit(main())
