"""The core every layer shares: values, secrets, the error tree, durations, events, logs,
atomic files, locks and clocks.

Imports nothing else of rotator: `backends/` and the simulator may import only this package.
"""
