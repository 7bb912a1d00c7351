"""Running the service: fleet, alerts, metrics, health, the daemon, stop signals."""
