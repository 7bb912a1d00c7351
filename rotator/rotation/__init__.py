"""One rotation: context, runtime, steps, driver, the service (the commands), sweep, status."""
