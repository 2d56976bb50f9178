"""The perdure server: log, partitions, invoker, ingress and admin."""
