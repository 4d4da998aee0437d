"""Ledger table → FOCUS table, column by column with pyarrow compute (columnar, no row dicts).

One ledger row (sandbox, hour, revision) becomes one FOCUS row. Rows whose hour lies before the
billing period being exported are late usage of a closed period: ChargeClass=Correction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc

from sandboxer.chargeback.focus_spec import arrow_schema
from sandboxer.chargeback.periods import BillingPeriod
from sandboxer.chargeback.settings import ExportSettings

_MS = pa.timestamp("ms", tz="UTC")
_SEP = "\x1f"
_NULL = "\x00"
_TAG_FIELDS = ("owner", "team", "cost_center", "sandbox_class", "namespace")
_TAG_NAMES = ("owner", "team", "cost-center", "class", "namespace")


def _tags(ledger: pa.Table) -> pa.Array:
    """JSON objects built once per distinct (owner, team, ...) combination, then fanned out."""
    key = pc.binary_join_element_wise(
        *[ledger[f] for f in _TAG_FIELDS], _SEP, null_handling="replace", null_replacement=_NULL
    )
    encoded = pc.dictionary_encode(key).combine_chunks()
    objects = []
    for combo in encoded.dictionary.to_pylist():
        values = combo.split(_SEP)
        tags = {n: v for n, v in zip(_TAG_NAMES, values, strict=True) if v != _NULL}
        objects.append(json.dumps(tags, sort_keys=True, separators=(",", ":")))
    return pc.take(pa.array(objects, pa.string()), encoded.indices)


# Constant columns are this many rows of one array, repeated: a multiple of the Parquet writer's
# write batch (1,024 rows), so its pages, dictionaries and statistics come out as for one chunk.
_CONST_CHUNK = 16_384


class FocusBuilder:
    """Builds FOCUS tables for one period batch by batch (see `build_focus_table`).

    A constant column is one `_CONST_CHUNK`-row array, built once per export and repeated as
    the chunks of the column, so it costs no memory per row.
    """

    def __init__(self, period: BillingPeriod, settings: ExportSettings) -> None:
        self.period = period
        self.settings = settings
        self._constants: dict[tuple[object, pa.DataType], pa.Array] = {}

    def _const(self, value: object, type_: pa.DataType, n: int) -> pa.ChunkedArray:
        chunk = self._constants.get((value, type_))
        if chunk is None:
            chunk = self._constants[(value, type_)] = pa.repeat(
                pa.scalar(value, type_), _CONST_CHUNK
            )
        whole, rest = divmod(n, _CONST_CHUNK)
        chunks = [chunk] * whole + ([chunk.slice(0, rest)] if rest else [])
        return pa.chunked_array(chunks, type=type_)

    def build(self, ledger: pa.Table) -> pa.Table:
        return _build(ledger, self.period, self.settings, self._const)


def build_focus_table(
    ledger: pa.Table, period: BillingPeriod, settings: ExportSettings
) -> pa.Table:
    """One FOCUS row per ledger row, in the ledger's order."""
    return FocusBuilder(period, settings).build(ledger)


def _build(
    ledger: pa.Table,
    period: BillingPeriod,
    s: ExportSettings,
    _const: Callable[[object, pa.DataType, int], pa.ChunkedArray],
) -> pa.Table:
    n = ledger.num_rows
    hour = pc.cast(ledger["hour"], _MS)
    alloc = ledger["allocated_gpu_hours"]
    busy = ledger["busy_gpu_hours"]
    team = ledger["team"]
    gpu_sku = pc.binary_join_element_wise(
        ledger["gpu_model"], ledger["mig_profile"], "-", null_handling="skip"
    )
    is_correction = pc.less(hour, pa.scalar(period.start, _MS))
    utilization = pc.if_else(
        pc.greater(alloc, 0.0), pc.round(pc.divide(busy, alloc), 6), pa.scalar(None, pa.float64())
    )
    description = pc.binary_join_element_wise(
        "GPU time of sandbox ", ledger["namespace"], "/", ledger["sandbox"],
        " (class ", ledger["sandbox_class"], ", ", gpu_sku, ")", "",
    )  # fmt: skip
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        "BilledCost": ledger["cost"],
        "EffectiveCost": ledger["cost"],
        "ListCost": ledger["list_cost"],
        "ContractedCost": ledger["cost"],
        "BillingAccountId": _const(s.billing_account_id, pa.string(), n),
        "BillingAccountName": _const(s.billing_account_name, pa.string(), n),
        "BillingCurrency": ledger["currency"],
        "BillingPeriodStart": _const(period.start, _MS, n),
        "BillingPeriodEnd": _const(period.end, _MS, n),
        "ChargePeriodStart": hour,
        "ChargePeriodEnd": pc.add(hour, pa.scalar(timedelta(hours=1), pa.duration("ms"))),
        "ChargeCategory": _const("Usage", pa.string(), n),
        "ChargeClass": pc.if_else(is_correction, "Correction", pa.scalar(None, pa.string())),
        "ChargeDescription": description,
        "PricingQuantity": alloc,
        "PricingUnit": _const("GPU-Hours", pa.string(), n),
        "ProviderName": _const(s.provider_name, pa.string(), n),
        "PublisherName": _const(s.provider_name, pa.string(), n),
        "InvoiceIssuerName": _const(s.provider_name, pa.string(), n),
        "ServiceName": _const(s.service_name, pa.string(), n),
        "ServiceCategory": _const(s.service_category, pa.string(), n),
        "ServiceSubcategory": _const(s.service_subcategory, pa.string(), n),
        "InvoiceId": _const(None, pa.string(), n),  # no invoice is issued by the export
        "ChargeFrequency": _const("Usage-Based", pa.string(), n),
        "BillingAccountType": _const(s.billing_account_type, pa.string(), n),
        "ConsumedQuantity": alloc,
        "ConsumedUnit": _const("GPU-Hours", pa.string(), n),
        "ListUnitPrice": ledger["list_unit_price"],
        "ContractedUnitPrice": ledger["contracted_unit_price"],
        "PricingCategory": _const("Standard", pa.string(), n),
        "RegionId": _const(s.region_id, pa.string(), n),
        "RegionName": _const(s.region_name or s.region_id, pa.string(), n),
        "ResourceId": ledger["sandbox_uid"],
        "ResourceName": ledger["sandbox"],
        "ResourceType": _const("ExperimentSandbox", pa.string(), n),
        "SkuId": pc.coalesce(ledger["sku"], gpu_sku),
        "SubAccountId": pc.coalesce(team, ledger["namespace"]),
        "SubAccountName": pc.coalesce(team, ledger["namespace"]),
        "SubAccountType": pc.if_else(pc.is_null(team), "Namespace", "Team"),
        "Tags": _tags(ledger) if n else pa.array([], pa.string()),
        "x_Owner": ledger["owner"],
        "x_Team": team,
        "x_CostCenter": ledger["cost_center"],
        "x_Namespace": ledger["namespace"],
        "x_SandboxClass": ledger["sandbox_class"],
        "x_GpuModel": ledger["gpu_model"],
        "x_MigProfile": ledger["mig_profile"],
        "x_Gpus": ledger["gpus"],
        "x_BusyGpuHours": busy,
        "x_GpuUtilizationAvg": utilization,
        "x_EnergyKWh": ledger["energy_kwh"],
        "x_PeakGpuMemoryBytes": ledger["peak_gpu_memory_bytes"],
        "x_Budget": ledger["budget"],
        "x_LedgerRevision": ledger["revision"],
    }
    schema = arrow_schema(s.focus_version)
    missing = set(schema.names) ^ set(columns)
    assert not missing, f"FOCUS builder and column spec disagree on {sorted(missing)}"
    return pa.table([columns[name] for name in schema.names], schema=schema)
