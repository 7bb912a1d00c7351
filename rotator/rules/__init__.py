"""Pure decisions: the rotation machine, the record and its outcome, key identity, guards.

No I/O; imports only rotator.core.
"""
