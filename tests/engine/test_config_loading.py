"""The one config loader (``engine.config_loading``): nested dicts -> frozen dataclasses, with
type coercion and errors that name the file and the key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path

import pytest

from engine.config_loading import build_config
from engine.errors import ConfigError


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Level(IntEnum):
    LOW = 1
    HIGH = 2


@dataclass(frozen=True, slots=True)
class Inner:
    port: int = 80
    ratio: float = 0.5
    on: bool = False


@dataclass(frozen=True, slots=True)
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    colour: Colour = Colour.RED
    limit: float | None = None
    tags: tuple[str, ...] = ()
    size: tuple[int, int] = (1, 1)
    levels: Mapping[int, Level] = field(default_factory=dict)
    where: Path = Path("x")

    def __post_init__(self) -> None:
        if self.name == "bad":
            msg = "Argument 'name' must not be 'bad'"
            raise ValueError(msg)


def test_a_strict_file_builds_nested_frozen_dataclasses() -> None:
    built = build_config(Outer, {
        "name": "n", "inner": {"port": 8080, "ratio": 1, "on": True}, "colour": "blue", "limit": 2,
        "tags": ["a", "b"], "size": [3, 4], "levels": {"1": "HIGH", "2": 1},
    }, source="site.toml")
    assert built == Outer(name="n", inner=Inner(8080, 1.0, True), colour=Colour.BLUE, limit=2.0,
                          tags=("a", "b"), size=(3, 4), levels={1: Level.HIGH, 2: Level.LOW})
    assert isinstance(built.inner.ratio, float)


def test_missing_keys_take_the_defaults_and_a_required_one_is_named() -> None:
    assert build_config(Outer, {"name": "n"}, source="site.toml") == Outer(name="n")
    with pytest.raises(ConfigError, match="site.toml: key name is missing"):
        build_config(Outer, {}, source="site.toml")


@pytest.mark.parametrize(("data", "message"), [
    ({"inner": {"port": "80"}}, "site.toml: inner.port must be an integer, got '80'"),
    ({"inner": {"port": True}}, "site.toml: inner.port must be an integer, got True"),
    ({"inner": {"ratio": "a lot"}}, "site.toml: inner.ratio must be a number, got 'a lot'"),
    ({"inner": {"on": "yes"}}, "site.toml: inner.on must be true or false, got 'yes'"),
    ({"inner": 3}, "site.toml: inner must be a table, got 3"),
    ({"colour": "green"}, "site.toml: colour must be one of red, blue, got 'green'"),
    ({"levels": {"1": "TOP"}}, r"site.toml: levels.1 must be one of LOW, HIGH, got 'TOP'"),
    ({"size": [1, 2, 3]}, r"site.toml: size must be a list of 2 values, got \[1, 2, 3\]"),
    ({"tags": "a,b"}, "site.toml: tags must be a list, got 'a,b'"),
    ({"name": 5}, "site.toml: name must be a string, got 5"),
])
def test_a_strict_file_refuses_a_value_of_the_wrong_type_naming_file_and_key(data, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build_config(Outer, {"name": "n", **data}, source="site.toml")


def test_lenient_reading_takes_text_from_the_environment() -> None:
    built = build_config(Outer, {"name": 5, "inner": {"port": "8642", "ratio": "0.25", "on": "yes"},
                                 "tags": "a, b,,c", "where": "~"}, source="settings", lenient=True)
    assert built.name == "5" and built.inner == Inner(8642, 0.25, True)
    assert built.tags == ("a", "b", "c")
    assert built.where == Path("~").expanduser().resolve()
    with pytest.raises(ConfigError, match="settings: inner.port must be an integer, got 'many'"):
        build_config(Outer, {"name": "n", "inner": {"port": "many"}}, source="settings", lenient=True)


def test_unknown_keys_are_refused_with_the_known_ones_or_left_out_when_asked() -> None:
    with pytest.raises(ConfigError, match=r"Unknown key\(s\) prot in site.toml: inner") as caught:
        build_config(Outer, {"name": "n", "inner": {"prot": 1}}, source="site.toml")
    assert "Use one of: on, port, ratio." in str(caught.value.action)
    assert build_config(Outer, {"name": "n", "extra": 1}, source="m", unknown_keys="ignore") == Outer(name="n")


def test_the_constructors_own_checks_become_a_config_error_with_detail() -> None:
    with pytest.raises(ConfigError, match="Model config x is invalid") as caught:
        build_config(Outer, {"name": "bad"}, source="Model config x")
    assert "Argument 'name' must not be 'bad'" in str(caught.value.detail)


def test_given_values_go_to_the_constructor_as_they_are() -> None:
    built = build_config(Outer, {"name": "n", "where": "ignored"}, source="m", given={"where": Path("rel")})
    assert built.where == Path("rel")


def test_the_settings_tree_reads_the_environment_through_the_loader(tmp_path: Path) -> None:
    from engine.settings import load_settings

    toml = tmp_path / "site.toml"
    toml.write_text("[orthanc]\nhttp_port = 9000\n")
    settings = load_settings(toml, environ={"GLIOWATCH_ALERTS__SINKS": "dashboard, webhook",
                                            "GLIOWATCH_SEGMENTATION__ENABLED": "off"})
    assert settings.orthanc.http_port == 9000
    assert settings.alerts.sinks == ("dashboard", "webhook") and settings.segmentation.enabled is False
    with pytest.raises(ConfigError, match=r"site.toml .*: orthanc.http_port must be an integer, got 'many'"):
        load_settings(toml, environ={"GLIOWATCH_ORTHANC__HTTP_PORT": "many"})
    with pytest.raises(ConfigError, match=r"Unknown key\(s\) htp_port in settings .*: orthanc"):
        load_settings(toml, environ={"GLIOWATCH_ORTHANC__HTP_PORT": "1"})


def test_the_key_image_is_off_in_the_shipped_config_and_can_be_turned_on() -> None:
    from engine.settings import PROJECT_ROOT, load_settings

    shipped = PROJECT_ROOT / "config" / "gliowatch.toml"
    assert load_settings(shipped, environ={}).writeback.key_image is False
    assert load_settings(shipped, environ={"GLIOWATCH_WRITEBACK__KEY_IMAGE": "true"}).writeback.key_image is True
