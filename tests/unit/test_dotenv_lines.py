"""Writing and reading one value for each reader: python-dotenv, Docker/Kubernetes env-files, a POSIX shell."""

from __future__ import annotations

import pytest
from dotenv import dotenv_values

from backends.dotenv_lines import Reader, Style, Unrepresentable, parse, render, style_of

AWKWARD = [
    "sk_test_plain_0001",
    "with space and 'single' and \"double\"",
    "a#b=c;d&e|f<g>h",
    "back\\slash",
    "dollar $x and `tick`",
]


def docker_env_file(text: str) -> dict[str, str]:
    """What `docker run --env-file` (and `kubectl create secret --from-env-file`) reads: NAME=rest of the line."""
    values = {}
    for line in text.splitlines():
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        name, _, value = stripped.partition("=")
        values[name] = value
    return values


@pytest.mark.parametrize("value", AWKWARD)
@pytest.mark.parametrize("style", [None, Style.BARE, Style.SINGLE, Style.DOUBLE])
def test_shell_values_read_back_exactly(value: str, style: Style | None):
    text = render(value, Reader.SHELL, style)
    assert parse(text, Reader.SHELL) == value


@pytest.mark.parametrize("value", [v for v in AWKWARD if "$" not in v])
@pytest.mark.parametrize("style", [None, Style.BARE, Style.SINGLE, Style.DOUBLE])
def test_dotenv_values_read_back_exactly_through_python_dotenv(value: str, style: Style | None, tmp_path):
    path = tmp_path / ".env"
    path.write_text(f"X={render(value, Reader.DOTENV, style)}\n")
    assert dotenv_values(path)["X"] == value


@pytest.mark.parametrize("value", AWKWARD)
def test_env_file_values_are_written_bare_and_read_as_the_rest_of_the_line(value: str):
    text = render(value, Reader.ENV_FILE, Style.SINGLE)
    assert text == value, "an env-file reader keeps quotes as part of the value: never write any"
    assert docker_env_file(f"X={text}\n")["X"] == value
    assert parse(text, Reader.ENV_FILE) == value


def test_a_lines_style_is_kept_where_the_value_fits_it():
    assert render("pk_test_1", Reader.DOTENV, Style.BARE) == "pk_test_1"
    assert render("pk_test_1", Reader.DOTENV, Style.DOUBLE) == '"pk_test_1"'
    assert render("pk_test_1", Reader.DOTENV, Style.SINGLE) == "'pk_test_1'"
    assert render("has space", Reader.DOTENV, Style.BARE) == "'has space'", "bare cannot carry a space"
    assert render("pk_test_1", Reader.SHELL, Style.BARE) == "pk_test_1"
    assert render("a'b", Reader.SHELL, Style.SINGLE) == "'a'\\''b'"


def test_style_of_an_existing_line():
    assert style_of("'x'") is Style.SINGLE
    assert style_of('"x"') is Style.DOUBLE
    assert style_of("x # note") is Style.BARE


@pytest.mark.parametrize(
    ("value", "reader", "why"),
    [
        ("", Reader.DOTENV, "empty"),
        ("a${B}c", Reader.DOTENV, "expands"),
        (" padded", Reader.ENV_FILE, "whitespace"),
        ("two\nlines", Reader.ENV_FILE, "spans lines"),
    ],
)
def test_values_a_reader_cannot_carry_are_refused(value: str, reader: Reader, why: str):
    with pytest.raises(Unrepresentable, match=why):
        render(value, reader, None)


@pytest.mark.parametrize("text", ["$HOME", '"$(id)"', "two words"])
def test_shell_lines_that_would_expand_or_split_are_not_read_as_a_value(text: str):
    with pytest.raises(Unrepresentable):
        parse(text, Reader.SHELL)
