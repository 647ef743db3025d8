"""Classify an MR series as T1 / T1c / T2 / FLAIR / OTHER from its DICOM header.

The decision is made by an ordered list of rules read from ``config/series_rules.toml``: the
first rule whose conditions all hold decides, and the result says which rule fired and which
header values it saw. When no rule fires the series is ``OTHER`` and the explanation lists the
values that were looked at, so a user can add a rule.

Text conditions are regular expressions searched (case-insensitively) in SeriesDescription and
ProtocolName after *normalisation*: lower case, with ``_ - . / , ( ) :`` turned into spaces, so
``t1_mprage_tra_Gd`` is seen as ``t1 mprage tra gd`` and ``\\bgd\\b`` matches it.

Conditions a rule may hold (all given conditions must hold):

``text`` (list of regexes)          every one matches the description or the protocol name
``text_not`` (list of regexes)      none matches the description nor the protocol name
``modality_not`` (list)             Modality is not one of these
``image_type_any`` (list)           one of these values is in ImageType
``scanning_sequence_any`` (list)    one of these values is in ScanningSequence
``contrast_agent`` (bool)           ContrastBolusAgent is present (true) / absent (false)
``inversion`` (bool)                InversionTime is present and > 0 (true) / not (false)
``tr_ms``, ``te_ms``, ``ti_ms``     ``[min, max]``: RepetitionTime / EchoTime / InversionTime in
                                    this inclusive range (a missing value never matches)
"""

from __future__ import annotations

import re
import struct
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.errors import BytesLengthException

from engine.errors import ConfigError
from engine.types import Sequence

#: DICOM keywords the rules may look at; ``series_header`` returns exactly these.
HEADER_KEYWORDS: tuple[str, ...] = (
    "SeriesDescription",
    "ProtocolName",
    "SequenceName",
    "ScanningSequence",
    "SequenceVariant",
    "ScanOptions",
    "MRAcquisitionType",
    "RepetitionTime",
    "EchoTime",
    "InversionTime",
    "ContrastBolusAgent",
    "ImageType",
    "Modality",
)
_MULTI_VALUED = frozenset({"ScanningSequence", "SequenceVariant", "ScanOptions", "ImageType"})
_NUMERIC_ORDER = ("RepetitionTime", "EchoTime", "InversionTime")
_NUMERIC = frozenset(_NUMERIC_ORDER)
_TEXT_FIELDS = ("SeriesDescription", "ProtocolName")
_UNREADABLE = (
    BytesLengthException, NotImplementedError, ValueError, TypeError, LookupError,
    AttributeError, struct.error,
)  # fmt: skip
#: where enhanced (multi-frame) MR keeps what classic images hold at the top level.
_ENHANCED_SOURCES = {
    "RepetitionTime": ("MRTimingAndRelatedParametersSequence", "RepetitionTime"),
    "EchoTime": ("MREchoSequence", "EffectiveEchoTime"),
    "InversionTime": ("MRModifierSequence", "InversionTimes"),
    "ContrastBolusAgent": ("", "ContrastBolusAgentSequence"),
}
_NORMALISE = re.compile(r"[_\-./,():]+")
_RULE_KEYS = frozenset(
    {
        "name", "sequence", "description", "text", "text_not", "modality_not", "image_type_any",
        "scanning_sequence_any", "contrast_agent", "inversion", "tr_ms", "te_ms", "ti_ms",
    }
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SeriesRule:
    """One ordered rule; ``None`` / empty means the condition is not used."""

    name: str
    sequence: Sequence
    description: str
    text: tuple[re.Pattern[str], ...] = ()
    text_not: tuple[re.Pattern[str], ...] = ()
    modality_not: tuple[str, ...] = ()
    image_type_any: tuple[str, ...] = ()
    scanning_sequence_any: tuple[str, ...] = ()
    contrast_agent: bool | None = None
    inversion: bool | None = None
    tr_ms: tuple[float, float] | None = None
    te_ms: tuple[float, float] | None = None
    ti_ms: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class SeriesRules:
    """The ordered rule list of one rules file."""

    version: str
    rules: tuple[SeriesRule, ...]
    source: str


@dataclass(frozen=True, slots=True)
class SeriesClass:
    """The classification of one series and its reason."""

    sequence: Sequence
    rule: str
    explanation: str


def load_series_rules(path: Path | str) -> SeriesRules:
    """Read and validate a rules TOML file; any problem is a :class:`ConfigError`."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        msg = f"Series rules file {path} does not exist"
        raise ConfigError(msg, action="Point settings.series_rules at a rules file.") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        msg = f"Series rules file {path} is not valid TOML"
        raise ConfigError(msg, detail=str(exc)) from exc
    return parse_series_rules(data, source=str(path))


def parse_series_rules(data: Mapping[str, Any], *, source: str) -> SeriesRules:
    """Build :class:`SeriesRules` from already-parsed TOML data."""
    unknown = set(data) - {"version", "rule"}
    if unknown:
        msg = f"Series rules {source}: unknown top-level key(s) {', '.join(sorted(unknown))}"
        raise ConfigError(msg, action="Use only 'version' and [[rule]] tables.")
    raw_rules = data.get("rule")
    if not isinstance(raw_rules, list) or not raw_rules:
        msg = f"Series rules {source}: no [[rule]] tables found"
        raise ConfigError(msg, action="Add at least one [[rule]] table.")
    rules = tuple(_parse_rule(raw, index, source) for index, raw in enumerate(raw_rules, 1))
    names = [rule.name for rule in rules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        msg = f"Series rules {source}: duplicate rule name(s) {', '.join(duplicates)}"
        raise ConfigError(msg)
    return SeriesRules(version=str(data.get("version", "")), rules=rules, source=source)


def _parse_rule(raw: Any, index: int, source: str) -> SeriesRule:
    where = f"Series rules {source}, rule #{index}"
    if not isinstance(raw, Mapping):
        msg = f"{where} must be a table"
        raise ConfigError(msg)
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        msg = f"{where}: unknown key(s) {', '.join(sorted(unknown))}"
        raise ConfigError(msg, action=f"Use only: {', '.join(sorted(_RULE_KEYS))}.")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        msg = f"{where}: 'name' must be a non-empty string"
        raise ConfigError(msg)
    where = f"Series rules {source}, rule '{name}'"
    try:
        sequence = Sequence(raw.get("sequence"))
    except ValueError as exc:
        msg = f"{where}: 'sequence' must be one of {', '.join(s.value for s in Sequence)}"
        raise ConfigError(msg) from exc
    rule = SeriesRule(
        name=name,
        sequence=sequence,
        description=str(raw.get("description", name)),
        text=_patterns(raw.get("text", []), f"{where}: 'text'"),
        text_not=_patterns(raw.get("text_not", []), f"{where}: 'text_not'"),
        modality_not=_strings(raw.get("modality_not", []), f"{where}: 'modality_not'"),
        image_type_any=_strings(raw.get("image_type_any", []), f"{where}: 'image_type_any'"),
        scanning_sequence_any=_strings(
            raw.get("scanning_sequence_any", []), f"{where}: 'scanning_sequence_any'"
        ),
        contrast_agent=_optional_bool(raw.get("contrast_agent"), f"{where}: 'contrast_agent'"),
        inversion=_optional_bool(raw.get("inversion"), f"{where}: 'inversion'"),
        tr_ms=_range(raw.get("tr_ms"), f"{where}: 'tr_ms'"),
        te_ms=_range(raw.get("te_ms"), f"{where}: 'te_ms'"),
        ti_ms=_range(raw.get("ti_ms"), f"{where}: 'ti_ms'"),
    )
    if set(raw) <= {"name", "sequence", "description"}:
        msg = f"{where} has no condition: it would match every series"
        raise ConfigError(msg, action="Give the rule at least one condition.")
    return rule


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        msg = f"{where} must be a list of non-empty strings"
        raise ConfigError(msg)
    return tuple(value)


def _patterns(value: Any, where: str) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for text in _strings(value, where):
        try:
            compiled.append(re.compile(text, re.IGNORECASE))
        except re.error as exc:
            msg = f"{where}: {text!r} is not a valid regular expression ({exc})"
            raise ConfigError(msg) from exc
    return tuple(compiled)


def _optional_bool(value: Any, where: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    msg = f"{where} must be true or false"
    raise ConfigError(msg)


def _range(value: Any, where: str) -> tuple[float, float] | None:
    if value is None:
        return None
    ok = isinstance(value, list) and len(value) == 2
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    if not ok or value[0] > value[1] or value[0] < 0:
        msg = f"{where} must be [min, max] with 0 <= min <= max (milliseconds)"
        raise ConfigError(msg)
    return (float(value[0]), float(value[1]))


def series_header(ds: Any) -> dict[str, Any]:
    """The header fields the rules use, as plain Python values (``None`` when absent).

    Text fields become ``str``, multi-valued ones ``list[str]``, times ``float`` (ms).
    """
    header: dict[str, Any] = {}
    for keyword in HEADER_KEYWORDS:
        try:
            value = ds.get(keyword)
            if value in (None, "") and keyword in _ENHANCED_SOURCES:
                value = _enhanced_value(ds, *_ENHANCED_SOURCES[keyword])
        except _UNREADABLE:  # a malformed element is converted (and fails) only on access
            value = None
        header[keyword] = _plain(keyword, value)
    return header


def _enhanced_value(ds: Any, group: str, keyword: str) -> Any:
    """A value of an enhanced (multi-frame) instance: shared, then first-frame functional groups."""
    if group == "":  # a code sequence at the top level of the dataset
        items = ds.get(keyword)
        return items[0].get("CodeMeaning") if items and len(items) else None
    shared, per_frame = "SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"
    for groups in (ds.get(shared), ds.get(per_frame)):
        items = groups[0].get(group) if groups and len(groups) else None
        if items and len(items) and items[0].get(keyword) not in (None, ""):
            return items[0].get(keyword)
    return None


def _plain(keyword: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    if keyword in _MULTI_VALUED:
        items = [value] if isinstance(value, str) else list(value)
        return [str(v).strip() for v in items if str(v).strip()]
    if keyword in _NUMERIC:
        try:
            first = value if isinstance(value, str | int | float) else list(value)[0]
            return float(first)
        except (TypeError, ValueError, IndexError):
            return None
    return str(value).strip() or None


def classify_series(header: Mapping[str, Any], rules: SeriesRules) -> SeriesClass:
    """Apply the ordered rules to a header (from :func:`series_header`); first match decides."""
    for rule in rules.rules:
        reasons = _match(rule, header)
        if reasons is not None:
            explanation = (
                f"{rule.sequence.value}: rule '{rule.name}' ({rule.description}) fired because "
                + "; ".join(reasons)
            )
            return SeriesClass(sequence=rule.sequence, rule=rule.name, explanation=explanation)
    return SeriesClass(
        sequence=Sequence.OTHER,
        rule="no-match",
        explanation=f"OTHER: no rule matched ({_summary(header)})",
    )


def _match(rule: SeriesRule, header: Mapping[str, Any]) -> list[str] | None:
    """The reasons the rule holds, or ``None`` as soon as one condition fails."""
    reasons: list[str] = []
    texts = {field: header.get(field) or "" for field in _TEXT_FIELDS}
    normalised = {field: _normalise(text) for field, text in texts.items()}
    for pattern in rule.text:
        found = ((f, pattern.search(normalised[f])) for f in _TEXT_FIELDS)
        hit = next(((f, m) for f, m in found if m), None)
        if hit is None:
            return None
        reasons.append(f"{hit[0]} {texts[hit[0]]!r} contains {hit[1].group(0).strip()!r}")
    for pattern in rule.text_not:
        if any(pattern.search(normalised[f]) for f in _TEXT_FIELDS):
            return None
    if rule.text_not:
        reasons.append("no excluding word of the rule (text_not) is present")
    if rule.modality_not:
        modality = header.get("Modality") or ""
        if modality.upper() in {m.upper() for m in rule.modality_not}:
            return None
        reasons.append(f"Modality {modality!r} is not {'/'.join(rule.modality_not)}")
    for keyword, wanted in (
        ("ImageType", rule.image_type_any),
        ("ScanningSequence", rule.scanning_sequence_any),
    ):
        if wanted:
            seen = [v.upper() for v in header.get(keyword) or []]
            hits = [w for w in wanted if w.upper() in seen]
            if not hits:
                return None
            joined = "\\".join(seen)
            reasons.append(f"{keyword} {joined} contains {hits[0]}")
    if rule.contrast_agent is not None:
        agent = header.get("ContrastBolusAgent")
        if bool(agent) != rule.contrast_agent:
            return None
        reasons.append(f"ContrastBolusAgent {agent!r}" if agent else "no ContrastBolusAgent")
    if rule.inversion is not None:
        ti_ms = header.get("InversionTime")
        has_inversion = ti_ms is not None and ti_ms > 0
        if has_inversion != rule.inversion:
            return None
        reasons.append(f"InversionTime {ti_ms:g} ms" if has_inversion else "no inversion pulse")
    for keyword, limits in (
        ("RepetitionTime", rule.tr_ms),
        ("EchoTime", rule.te_ms),
        ("InversionTime", rule.ti_ms),
    ):
        if limits is not None:
            value = header.get(keyword)
            if value is None or not limits[0] <= value <= limits[1]:
                return None
            reasons.append(f"{keyword} {value:g} ms in [{limits[0]:g}, {limits[1]:g}]")
    return reasons


def _normalise(text: str) -> str:
    return " ".join(_NORMALISE.sub(" ", text.lower()).split())


def _summary(header: Mapping[str, Any]) -> str:
    parts = []
    for keyword in ("Modality", *_TEXT_FIELDS, "ImageType", *_NUMERIC_ORDER, "ContrastBolusAgent"):
        value = header.get(keyword)
        if value is None:
            text = "absent"
        elif isinstance(value, list):
            text = "/".join(value)
        elif isinstance(value, float):
            text = f"{value:g} ms"
        else:
            text = repr(value)
        parts.append(f"{keyword} {text}")
    return ", ".join(parts)
