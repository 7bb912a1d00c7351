"""`rotator demo` reads as text wherever its output goes (issue 20, "found when tried as a new user would": the demo
mixed JSON log records into its output when not run in a terminal).

At its default level it logs nothing but warnings (tests/e2e/test_demo_logs.py). Asked for its logs (-v), piped as
`make demo 2>&1 | cat` pipes it, they are text lines on stderr (where the README says logs go), never JSON records
between the demo's lines; `--log-format json` still gives JSON to whoever asks for it (tests/e2e/test_demo_logs.py).
"""

from __future__ import annotations

import re

from tests.e2e.test_demo_logs import _demo as demo_through_a_pipe  # both streams piped, as `make demo | cat` runs it
from tests.e2e.test_demo_logs import _json_log_lines as json_records


def test_the_demo_asked_for_its_logs_through_a_pipe_is_text_only() -> None:
    result = demo_through_a_pipe("-v")
    out, err = result.stdout, result.stderr
    assert result.returncode == 0, out + err
    assert json_records(out) == []
    assert json_records(err) == [], err[:3000]
    assert re.search(r"^INFO +\S", err, re.MULTILINE), err[:2000]  # the logs, as text lines, on stderr
    assert not re.search(r"^(INFO|DEBUG|WARNING) ", out, re.MULTILINE), "no log line on stdout"
    assert "bluum-rotator demo: a real rotation against the local Bluum simulator" in out
    assert re.search(r"old key apk_\w+: 401 BLUM-401-003", out)
    assert "environment  sandbox in rotator.toml; Bluum's API and dashboard call it TEST" in out  # the mapping
