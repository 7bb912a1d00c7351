"""The long-running way in, and what only a host process needs: the daemon's loop (`loop`), Prometheus metrics served
on `/metrics` or written as `run-due`'s textfile (`metrics`), `/healthz` and the heartbeat (`health`), SIGTERM/SIGINT
(`stop_signals`).

Why a folder of its own: it imports `schedule` and `prometheus_client`, which the Lambda's package leaves out, and the
Lambda never runs a loop or serves HTTP. `scripts/build_lambda_zip.py` leaves this folder out of the zip, and the
import-rule test (tests/unit/test_import_layers.py) holds that `rotator.aws_lambda` never imports it.
"""
