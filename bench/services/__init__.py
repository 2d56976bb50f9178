"""The benchmark's workload handlers, written once and served by either SDK.

``bench.services.app:official_app`` (the official ``restate-sdk``) and
``bench.services.app:perdure_app`` (``import perdure``) are the two deployments.
"""
