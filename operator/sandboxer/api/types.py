"""Shared field types: Go-style durations, Kubernetes quantities, DNS-1123 names, conditions.

Each type validates in pydantic and carries the matching OpenAPI schema, so the same rule holds
in the webhook, the CLI and the CRD the API server enforces.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

# Go's time.ParseDuration units; we forbid signs and bare numbers ("0" alone is not useful here).
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

# The API server's resource.Quantity grammar (apimachinery quantity.go).
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_QUANTITY = re.compile(QUANTITY_PATTERN)
_QUANTITY_SUFFIX = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}  # fmt: skip

DNS1123_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS1123_LABEL = re.compile(DNS1123_LABEL_PATTERN)


def parse_duration(value: str) -> timedelta:
    """Parse a Go-style duration ("90s", "1h30m") into a timedelta."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(
            f"invalid duration {value!r}: use Go-style units like '90s', '30m' or '1h30m'"
        )
    return timedelta(
        seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))
    )


def format_duration(delta: timedelta) -> str:
    """The shortest Go-style form of a whole-second duration ("1h30m", "45s", "0s")."""
    total = int(delta.total_seconds())
    hours, rest = divmod(total, 3600)
    minutes, seconds = divmod(rest, 60)
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return out + (f"{seconds}s" if seconds or not out else "")


def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a Kubernetes quantity ("500m", "64Gi", 2) into a Decimal of base units."""
    text = str(value)
    if not _QUANTITY.match(text):
        raise ValueError(
            f"invalid quantity {text!r}: use Kubernetes quantities like '500m', '4', '64Gi'"
        )
    for suffix in sorted(_QUANTITY_SUFFIX, key=len, reverse=True):
        if suffix and text.endswith(suffix) and not re.search(r"[eE]", text[: -len(suffix)]):
            return Decimal(text[: -len(suffix)]) * _QUANTITY_SUFFIX[suffix]
    return Decimal(text)


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


def _check_quantity(value: str) -> str:
    parse_quantity(value)
    return value


def _quantity_to_str(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def _check_label(value: str) -> str:
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        raise ValueError(
            f"invalid name {value!r}: must be a DNS-1123 label (lowercase letters, digits and '-', "
            "starting and ending with a letter or digit, at most 63 characters)"
        )
    return value


Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]
Quantity = Annotated[
    str,
    BeforeValidator(_quantity_to_str),
    AfterValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]
DNSLabel = Annotated[
    str,
    AfterValidator(_check_label),
    WithJsonSchema({"type": "string", "maxLength": 63, "pattern": DNS1123_LABEL_PATTERN}),
]
Timestamp = Annotated[datetime, WithJsonSchema({"type": "string", "format": "date-time"})]


class Model(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=True,
    )

    def dump(self) -> dict[str, Any]:
        """The wire form: camelCase keys, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(Model):
    """A Kubernetes-style condition (API conventions, "Typical status properties")."""

    type: str = Field(description="Type of condition in CamelCase, e.g. Ready.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        description="One CamelCase word saying why the condition has this status.",
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        max_length=1024,
    )
    message: str = Field(default="", description="Human-readable details.", max_length=32768)
    last_transition_time: Timestamp = Field(
        description="When the status last changed (not when it was last checked)."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this condition was set for."
    )


RFC3339 = "%Y-%m-%dT%H:%M:%SZ"


def rfc3339(at: datetime) -> str:
    """UTC, whole seconds, `Z`: the timestamp form Kubernetes writes (and ledger files use)."""
    return at.astimezone(UTC).strftime(RFC3339)


def parse_rfc3339(text: str) -> datetime:
    return datetime.strptime(text, RFC3339).replace(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def set_condition(
    conditions: list[Condition],
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str = "",
    *,
    generation: int | None = None,
    at: datetime | None = None,
) -> list[Condition]:
    """Return conditions with `type` set; lastTransitionTime moves only when status changes."""
    at = at or now()
    out: list[Condition] = []
    found = False
    for cond in conditions:
        if cond.type != type:
            out.append(cond)
            continue
        found = True
        moved = cond.status != status
        out.append(
            Condition(
                type=type,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=at if moved else cond.last_transition_time,
                observed_generation=generation,
            )
        )
    if not found:
        out.append(
            Condition(
                type=type,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=at,
                observed_generation=generation,
            )
        )
    return out


def get_condition(conditions: list[Condition], type: str) -> Condition | None:
    return next((c for c in conditions if c.type == type), None)
