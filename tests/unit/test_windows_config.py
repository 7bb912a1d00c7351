"""`[windows]` and `[credentials.NAME.windows]` in rotator.toml (rotator/config/windows.py): defaults, key-by-key
overrides, and each mistake named with its key and the fix."""

from __future__ import annotations

from rotator.rules.windows import Window
from tests.unit.test_config import TENANT, TRADING, parse, problems_of, render

NIGHT = '[{ cron = "0 22 * * *", duration = "4h" }]'


def with_windows(default: str = "", own: str = "") -> str:
    text = render(credentials={"tenant": TENANT, "trading": TRADING})
    if own:
        text += f"\n[credentials.trading.windows]\n{own}\n"
    if default:
        text = f"[windows]\n{default}\n" + text
    return text


def test_no_windows_gate_nothing() -> None:
    config = parse(with_windows())
    assert not config.credential("trading").windows.gated


def test_the_default_applies_to_every_credential_and_a_credential_overrides_it_key_by_key() -> None:
    config = parse(
        with_windows(
            default=f'timezone = "Europe/Berlin"\nallow = {NIGHT}\nstarts_per_window = 20',
            own='deny = [{ cron = "0 23 * * *", duration = "30m" }]\nstarts_per_window = 5',
        )
    )
    tenant = config.credential("tenant").windows
    trading = config.credential("trading").windows
    assert tenant.allow == (Window("0 22 * * *", 4 * 3600.0, "Europe/Berlin"),)
    assert tenant.starts_per_window == 20
    assert trading.allow == tenant.allow  # inherited
    assert trading.deny == (Window("0 23 * * *", 1800.0, "Europe/Berlin"),)  # the default's zone
    assert trading.starts_per_window == 5


def test_an_empty_allow_list_lifts_the_default() -> None:
    config = parse(with_windows(default=f"allow = {NIGHT}", own="allow = []"))
    assert config.credential("trading").windows.allow == ()


def test_a_bad_cron_is_named_with_the_fix() -> None:
    message = problems_of(with_windows(own='allow = [{ cron = "61 22 * * *", duration = "1h" }]'))
    assert "credentials.trading.windows.allow[0].cron" in message
    assert "is not a cron expression" in message
    assert "Fix: write five fields" in message


def test_an_unknown_zone_is_named_with_the_fix() -> None:
    message = problems_of(with_windows(default='timezone = "Europe/Berlinn"'))
    assert "windows.timezone: unknown time zone" in message
    assert "IANA name" in message


def test_a_duration_longer_than_the_cron_period_is_named() -> None:
    message = problems_of(with_windows(own='allow = [{ cron = "0 * * * *", duration = "2h" }]'))
    assert "credentials.trading.windows.allow[0].duration" in message
    assert "longer than the time between two openings" in message
    assert 'Fix: write duration = "60m" or less' in message


def test_a_window_that_can_never_open_for_a_due_key_is_named() -> None:
    message = problems_of(
        with_windows(
            own='allow = [{ cron = "0 1 * * *", duration = "1h" }]\ndeny = [{ cron = "0 0 * * *", duration = "3h" }]'
        )
    )
    assert "credentials.trading.windows" in message
    assert "no scheduled rotation can ever start" in message


def test_a_missing_duration_and_an_unknown_key_are_named() -> None:
    message = problems_of(with_windows(default='allow = [{ cron = "0 1 * * *" }]\nstart_per_window = 3'))
    assert "windows.allow[0].duration: missing" in message
    assert "did you mean 'starts_per_window'" in message


def test_a_credential_in_another_zone_reads_the_default_windows_in_its_own_zone() -> None:
    config = parse(with_windows(default=f'timezone = "Europe/Berlin"\nallow = {NIGHT}', own='timezone = "Asia/Tokyo"'))
    assert config.credential("trading").windows.allow == (Window("0 22 * * *", 4 * 3600.0, "Asia/Tokyo"),)
    assert config.credential("tenant").windows.allow == (Window("0 22 * * *", 4 * 3600.0, "Europe/Berlin"),)


def test_a_default_that_never_opens_is_said_once_for_the_fleet() -> None:
    never = 'allow = [{ cron = "0 1 * * *", duration = "1h" }]\ndeny = [{ cron = "0 0 * * *", duration = "3h" }]'
    message = problems_of(with_windows(default=never))
    assert message.count("no scheduled rotation can ever start") == 1
    assert "windows (first for credentials.tenant)" in message
