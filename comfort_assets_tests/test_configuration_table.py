"""The README's configuration table names every environment variable the code reads, and
only those: a setting nobody can find is as broken as one that does nothing."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: a read: os.environ.get("X") / environ["X"] / os.getenv("X") / dg.EnvVar("X") /
#: environ.setdefault("X", …) / number_setting("X", …), or a module constant naming a
#: variable (``…_ENV = "X"``)
READS = re.compile(
    r"""(?:environ(?:\.get|\.setdefault)?\s*[\(\[]|getenv\(|EnvVar\(|number_setting\()"""
    r"""\s*["']([A-Z][A-Z0-9_]+)["']"""
    r"""|_ENV\s*=\s*["']([A-Z][A-Z0-9_]+)["']"""
)
#: variables the code sets for libraries, or reads only to pass through, not settings of ours
NOT_SETTINGS = {
    "WANDB_SILENT",
    "WANDB_DIR",
    "WANDB_DATA_DIR",
    "WANDB_CACHE_DIR",
    "WANDB_ARTIFACT_DIR",
    "WANDB_CONFIG_DIR",
    "BENTOML_DO_NOT_TRACK",
    "DAGSTER_DISABLE_TELEMETRY",
    "PATH",
    "HOME",
    "USER",
}


def variables_read() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "comfort_assets").rglob("*.py"):
        for match in READS.finditer(path.read_text()):
            found.add(match.group(1) or match.group(2))
    return found - NOT_SETTINGS


def readme_table() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def test_every_variable_the_code_reads_is_in_the_readme_table():
    read = variables_read()
    assert {"COMFORT_ENV", "COMFORT_SOURCE", "COMFORT_PREDICTION_DB_URL"} <= read
    missing = read - readme_table()
    assert not missing, f"read by the code but not in the README's table: {sorted(missing)}"


def test_the_readme_table_names_no_variable_the_code_ignores():
    stale = readme_table() - variables_read()
    assert not stale, f"in the README's table but read nowhere: {sorted(stale)}"
