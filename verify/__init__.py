"""perdure's verification runner: proves the invariants of architecture.md under faults.

    python -m verify --keys 20 --programs 300 --duration 150 --crash-interval 8 --seed N \\
        --sdk perdure|official --faults server,service,proxy
    python -m verify --ci      # the CI run: >= 5 server crashes (10+ in practice), ~2 minutes

Other flags: ``--layers``, ``--concurrency``, ``--proxy-interval``, ``--http1`` (HTTP/1.1
request/response deployment), ``--drain-timeout``, ``--min-server-crashes``, ``--workdir``,
``--keep``, ``--live-tree`` (by default the server and SDK run from a copy of src/perdure
taken at the start, kept in the work dir, so edits during a run cannot mix versions).

- ``programs``: random programs, a pure function of (seed, program id), and their model;
- ``interpreter`` (served by ``services_perdure`` / ``services_official``): the virtual
  objects that run them, written once for both SDKs;
- ``proxy``: a TCP proxy between server and deployment that resets, closes and stalls
  connections;
- ``runner``: processes, workload, seeded fault schedule, drain;
- ``oracle``: the invariant checks.

Exit status 0 when every invariant held, 1 on a violation (the seed and the command that
reproduces it are printed), 2 for bad flags.
"""
