"""Asset checks: Pandera contracts turned into Dagster check results people can read."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from comfort_assets.domain.schemas import validate


def schema_check(
    frame: pd.DataFrame,
    schema: pa.DataFrameSchema | type[pa.DataFrameModel],
    *,
    asset_key: str,
    check_name: str = "schema",
) -> dg.AssetCheckResult:
    """Validate lazily; on failure say which column, which rule and how many rows."""
    report = validate(schema, frame)
    metadata: dict[str, dg.MetadataValue] = {
        "rows": dg.MetadataValue.int(len(frame)),
        "summary": dg.MetadataValue.text(report.summary()),
    }
    if not report.passed:
        metadata["failing_rows"] = dg.MetadataValue.int(int(report.failures["failing_rows"].sum()))
        metadata["failures"] = dg.MetadataValue.md(report.failures.to_markdown(index=False))
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=check_name,
        passed=report.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=None if report.passed else report.summary()[:1000],
    )


def schema_spec(asset_key: str, *, blocking: bool, description: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        name="schema", asset=asset_key, blocking=blocking, description=description
    )
