"""The Temporal/DBOS smoke needs packages that `./scripts/setup-bench-engines` installs (and a
PostgreSQL); it is collected only when asked for with BENCH_ENGINES_TEST, so a plain run of the
suite neither needs those engines nor reports a skipped test for them."""

import os

collect_ignore = [] if os.environ.get("BENCH_ENGINES_TEST") else ["test_bench_engines.py"]
