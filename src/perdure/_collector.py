"""CPython's collector thresholds for the processes perdure runs itself (the server and the
perdure SDK's own server; a program that calls `perdure.sdk.server.serve()` keeps its own).

CPython's defaults (700, 10, 10) but for the last: full collections 100x rarer (after 1,000
second-generation collections, not 10). Under load most tracked objects are the state of
invocations in flight, which refcounting frees; a full collection walked all of them (125 ms
each in the server, six in six seconds, with 128 concurrent fan-outs of 20). The young
generations are collected as before, so cycles that die young still go at once; older cyclic
garbage waits for a full collection (about every 7 million container allocations)."""

GC_THRESHOLDS = (700, 10, 1000)
