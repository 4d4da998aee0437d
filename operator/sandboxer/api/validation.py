"""Validate objects against a CRD's OpenAPI v3 schema the way the API server does.

Used by the embedded API server (422 with `details.causes`) and by the contract tests on
`examples/`. Unknown fields are errors, as with kubectl's default strict field validation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, cast

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError


@dataclass(frozen=True)
class FieldError:
    field: str  # dotted path as the API server prints it, e.g. spec.gpus
    message: str
    reason: str = "FieldValueInvalid"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def to_jsonschema(node: Any) -> Any:
    """OpenAPI v3.0 structural schema -> JSON Schema draft 7 (nullable, bounds, strict fields)."""
    if isinstance(node, list):
        return [to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.get(bound) is True:
            out[bound] = out.pop(flag)
        elif out.get(bound) is False:
            del out[bound]
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.pop("nullable", False):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        elif "anyOf" in out:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _path(error: ValidationError) -> str:
    text = ""
    for part in error.absolute_path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<root>"


def _describe(error: ValidationError) -> tuple[str, str, str]:
    field = _path(error)
    validator = error.validator
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    instance: Any = error.instance
    if validator == "additionalProperties":
        extra = sorted(set(instance) - set(schema.get("properties", {})))
        name = f"{field}.{extra[0]}" if field != "<root>" else extra[0]
        return name, f'unknown field "{extra[0]}"', "FieldValueInvalid"
    if validator == "required":
        missing = str(error.message).split("'")[1]
        name = f"{field}.{missing}" if field != "<root>" else missing
        return name, "Required value", "FieldValueRequired"
    if validator == "enum":
        options = cast(list[Any], error.validator_value)
        allowed = ", ".join(f'"{v}"' for v in options if v is not None)
        return (
            field,
            f"Unsupported value: {error.instance!r}: supported values: {allowed}",
            ("FieldValueNotSupported"),
        )
    if validator in ("maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum"):
        op = {"maximum": "<=", "minimum": ">=", "exclusiveMaximum": "<", "exclusiveMinimum": ">"}
        return (
            field,
            (
                f"Invalid value: {error.instance!r}: must be {op[str(validator)]} "
                f"{error.validator_value}"
            ),
            "FieldValueInvalid",
        )
    if validator in ("maxLength", "minLength", "maxItems", "minItems"):
        word = {"maxLength": "at most", "minLength": "at least"}.get(str(validator))
        unit = "characters" if "Length" in str(validator) else "items"
        word = word or ("at most" if validator == "maxItems" else "at least")
        return (
            field,
            (
                f"Invalid value: {_short(error.instance)}: must have {word} "
                f"{error.validator_value} {unit}"
            ),
            "FieldValueTooLong" if validator.startswith("max") else "FieldValueInvalid",
        )
    if validator == "pattern":
        return (
            field,
            (f"Invalid value: {_short(error.instance)}: should match '{error.validator_value}'"),
            "FieldValueInvalid",
        )
    if validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return (
            field,
            (f"Invalid value: {_short(error.instance)}: must be of type {expected}"),
            "FieldValueTypeInvalid",
        )
    return field, f"Invalid value: {_short(error.instance)}: {error.message}", "FieldValueInvalid"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validate(schema: dict[str, Any], obj: dict[str, Any]) -> list[FieldError]:
    """All schema violations of `obj`, sorted by field, phrased like the API server's."""
    validator = Draft7Validator(to_jsonschema(schema))
    errors = []
    for error in validator.iter_errors(obj):
        # anyOf wrappers hide the useful message: report the best nested one instead.
        if error.context:
            error = min(error.context, key=lambda e: len(list(e.absolute_path)) * -1)
        field, message, reason = _describe(error)
        errors.append(FieldError(field, message, reason))
    return sorted(set(errors), key=lambda e: (e.field, e.message))


def apply_defaults(schema: dict[str, Any], obj: Any) -> Any:
    """Return a copy of obj with the schema's defaults filled in (as the API server does)."""
    obj = copy.deepcopy(obj)
    _fill(schema, obj)
    return obj


def _fill(schema: dict[str, Any], obj: Any) -> None:
    if isinstance(obj, dict):
        for name, sub in schema.get("properties", {}).items():
            if name not in obj and "default" in sub:
                obj[name] = copy.deepcopy(sub["default"])
            if name in obj:
                _fill(sub, obj[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in obj:
                if name not in schema.get("properties", {}):
                    _fill(extra, obj[name])
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for item in obj:
            _fill(schema["items"], item)
