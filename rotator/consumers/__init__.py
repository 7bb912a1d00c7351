"""Asking a credential's consumers which key they use (issue 19): the I/O half of consumer attestation.

Its own layer, after config (the `Consumer` objects) and bluum (httpx is a dependency of both) and before rotation
(the gate that decides on the old key, rotator/rotation/attest_gate.py): what the answers mean is decided in
rotator/rules/consumers.py, with no I/O; what an application serves is rotator/attest.py.
"""
