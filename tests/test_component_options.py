"""The one resolver of a component's declared options: types, defaults and help from the constructor, text read by
the declared type, and one-line refusals naming the option (and the nearest one for a misspelt key)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from medsyn.component_options import declared_options, parse_assignments
from medsyn.errors import InputError, ParameterError


class Sample:
    """A component.

    urls: one or more servers;
        repeat the option for several.
    flag: a switch.
    limit: a bound (none: no bound).
    pair: two numbers.
    where: a folder.
    """

    def __init__(
        self,
        *,
        urls: str | Sequence[str] | None = None,
        flag: bool = False,
        limit: float | None = 1.5,
        pair: tuple[float, float] | None = None,
        where: Path | None = None,
    ) -> None: ...


OPTS = declared_options(Sample)


def test_types_defaults_and_help_come_from_the_constructor() -> None:
    rows = {o.name: (o.type_text, o.default, o.help) for o in OPTS.values()}
    assert rows["urls"] == ("str | Sequence[str] | None", None, "one or more servers; repeat the option for several.")
    assert rows["limit"] == ("float | None", 1.5, "a bound (none: no bound).")
    assert OPTS["urls"].repeatable and not OPTS["pair"].repeatable


def test_text_is_read_by_the_declared_type() -> None:
    got = parse_assignments(
        ["urls=http://a/v1?x=1", "urls=http://b/v1", "flag=yes", "limit=none", "pair=0.5, 2", "where=/tmp/x"],
        OPTS,
        what="the sample component",
    )
    assert got == {"urls": ["http://a/v1?x=1", "http://b/v1"], "flag": True, "limit": None, "pair": (0.5, 2.0),
                   "where": Path("/tmp/x")}  # fmt: skip
    assert parse_assignments(["urls="], OPTS, what="x") == {"urls": []}  # KEY= alone: an empty list


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("flag=maybe", "flag (bool): expected true or false, got 'maybe'"),
        ("limit=lots", "limit (float | None): expected a number, got 'lots'"),
        ("pair=1", "pair (tuple[float, float] | None): expected 2 comma-separated values, got '1'"),
        ("limt=2", "the sample component has no option 'limt'; did you mean 'limit'?"),
        ("limit", "--option 'limit': expected KEY=VALUE"),
    ],
)
def test_a_bad_assignment_is_one_line(pair: str, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_assignments([pair], OPTS, what="the sample component")
    assert str(err.value) == message


def test_a_single_option_given_twice_is_refused() -> None:
    with pytest.raises(InputError, match="--option flag is given twice"):
        parse_assignments(["flag=true", "flag=false"], OPTS, what="x")
    with pytest.raises(ParameterError) as err:  # the CLI renders {limit} as the flag its user gave
        OPTS["limit"].coerce("x")
    assert err.value.params == ("limit",)
