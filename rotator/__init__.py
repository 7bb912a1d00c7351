"""bluum-rotator: rotates Bluum Finance API credentials without downtime.

Kept empty of imports on purpose: `rotator --help` and the Lambda cold start pay only for what they use.
"""

__version__ = "0.1.0"
