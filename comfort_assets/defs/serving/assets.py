"""Group `evaluation`, last step: the Bento that serves the champion.

Runs after `champion_model` (a dependency without data): when a challenger lost,
`champion_model` yields nothing and this asset is skipped, not failed. It builds for whatever
the registry's champion pointer names, so running it alone after `comfort promote` or
`comfort rollback` rebuilds the Bento for the new champion.

The build context holds the code, the root `bentofile.yaml` and a snapshot of the
champion in the registry layout under ``.comfort/store``: the Bento serves that champion
when started with no ``COMFORT_HOME`` (``bentoml serve TAG``, a container), and follows the
live registry's pointer when ``COMFORT_HOME``/``COMFORT_ENV`` name one.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

import comfort_assets
from comfort_assets.deployment import comfort_home
from comfort_assets.resources.registry import CHAMPION_KEY, ModelRegistry

PACKAGE_DIR = Path(comfort_assets.__file__).parent
BENTOFILE = PACKAGE_DIR.parent / "bentofile.yaml"
BENTO_NAME = "comfort_forecast"
#: Run in a fresh process so that BENTOML_HOME applies; a rebuild for the same champion
#: replaces the Bento (the code may have changed), so the tag stays the champion's version.
_BUILD = """
import sys, bentoml
from bentoml.exceptions import NotFound
context, name, version = sys.argv[1:]
try:
    bentoml.delete(f"{name}:{version}")
except NotFound:
    pass
bento = bentoml.bentos.build_bentofile(
    context + "/bentofile.yaml", name=name, version=version,
    labels={"champion": version}, build_ctx=context,
)
print(bento.tag, bento.path, sep="\\n")
"""


def bentoml_home() -> Path:
    return Path(os.environ.get("BENTOML_HOME", comfort_home() / "bentoml"))


def build_context(registry: ModelRegistry, version: str, context: Path) -> Path:
    """Code + bentofile + the champion's registry files (sha256 verified on the way)."""
    if not BENTOFILE.exists():
        raise FileNotFoundError(f"{BENTOFILE} is missing: build the Bento from a checkout")
    registry.load(version)  # refuse to ship files that fail their sha256 check
    shutil.rmtree(context, ignore_errors=True)
    shutil.copytree(
        PACKAGE_DIR,
        context / "comfort_assets",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    shutil.copy(BENTOFILE, context / "bentofile.yaml")
    snapshot = context / ".comfort" / "store" / registry.prefix
    for key in registry.store.list_keys(f"{registry.prefix}/{version}/"):
        target = snapshot.parent / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(registry.store.get_bytes(key))
    (snapshot / CHAMPION_KEY).write_text(
        json.dumps({"version": version, "history": [], "reason": "bundled in the Bento"})
    )
    return context


@dg.asset(group_name="evaluation", kinds={"bentoml"}, deps=["champion_model"])
def bento(context: dg.AssetExecutionContext, registry: ModelRegistry) -> dg.MaterializeResult:
    """`bentoml build` of the service with the current champion, labelled with its version,
    ready for `bentoml serve TAG` and `bentoml containerize TAG`."""
    version = registry.champion()
    if version is None:
        raise dg.Failure("there is no champion to build a Bento for")
    started = time.perf_counter()
    home = bentoml_home()
    source = build_context(registry, version, home / "build-context")
    completed = subprocess.run(
        [sys.executable, "-c", _BUILD, str(source), BENTO_NAME, version],
        cwd=source,
        env={**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if completed.returncode != 0:
        raise dg.Failure(
            "bentoml build failed",
            metadata={"stderr": dg.MetadataValue.text(completed.stderr[-4000:])},
        )
    tag, path = completed.stdout.strip().splitlines()[-2:]
    took = time.perf_counter() - started
    context.log.info(f"built {tag} in {took:.1f} s; serve with BENTOML_HOME={home} bentoml serve")
    return dg.MaterializeResult(
        metadata={
            "bento_tag": dg.MetadataValue.text(tag),
            "path": dg.MetadataValue.path(path),
            "champion": dg.MetadataValue.text(version),
            "build_seconds": dg.MetadataValue.float(took),
            "serve": dg.MetadataValue.md(
                f"`BENTOML_HOME={home} bentoml serve {tag}` · `bentoml containerize {tag}`"
            ),
        }
    )
