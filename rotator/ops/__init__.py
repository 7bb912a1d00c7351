"""Running the service, for every way in: the app (a service and its bus), the tick, the fleet, the alerts.

What only the daemon and the command line need (the loop, Prometheus metrics, /healthz, stop signals) is in
`rotator/daemon/`, which the Lambda never imports.
"""
