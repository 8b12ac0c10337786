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

import contextlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import dagster as dg

import comfort_assets
from comfort_assets.deployment import comfort_home
from comfort_assets.resources.registry import CHAMPION_KEY, ModelRegistry

PACKAGE_DIR = Path(comfort_assets.__file__).parent
BENTOFILE = PACKAGE_DIR.parent / "bentofile.yaml"
BENTO_NAME = "comfort_forecast"
#: how long a build may take before the asset fails
BUILD_TIMEOUT_S = 300


class StaleBentoHome(RuntimeError):
    """This process's BentoML already settled on another BENTOML_HOME."""


def build_bento(source: str, name: str, version: str, home: str) -> tuple[str, str]:
    """`bentoml build` of ``source`` into ``home``; a rebuild for the same champion replaces
    the Bento (the code may have changed), so the tag stays the champion's version.

    BentoML settles on its home once per process, so this runs in a forked or fresh child.
    """
    os.environ["BENTOML_HOME"] = home
    os.environ["BENTOML_DO_NOT_TRACK"] = "True"
    import bentoml
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml.exceptions import NotFound

    if os.path.realpath(BentoMLContainer.bentoml_home.get()) != os.path.realpath(home):
        raise StaleBentoHome(BentoMLContainer.bentoml_home.get())
    with contextlib.suppress(NotFound):
        bentoml.delete(f"{name}:{version}")
    bento = bentoml.bentos.build_bentofile(
        f"{source}/bentofile.yaml",
        name=name,
        version=version,
        labels={"champion": version},
        build_ctx=source,
    )
    return str(bento.tag), str(bento.path)


def _forked_build(connection: Connection, *args: str) -> None:
    try:
        connection.send(("built", build_bento(*args)))
    except StaleBentoHome:
        connection.send(("stale", None))
    except BaseException:
        connection.send(("failed", traceback.format_exc()[-4000:]))


def run_build(source: Path, name: str, version: str, home: Path) -> tuple[str, str]:
    """Build in a fork of this process, which has imported the service's libraries already
    (a fresh interpreter spends ~4 s importing them); in a fresh interpreter where fork is
    unavailable or this process's BentoML has settled on another home."""
    args = (str(source), name, version, str(home))
    forkable = "fork" in multiprocessing.get_all_start_methods()
    outcome, value = _build_in_fork(args) if forkable else ("stale", None)
    if outcome == "stale":
        outcome, value = _build_in_fresh_interpreter(source, args)
    if outcome == "failed":
        raise dg.Failure("bentoml build failed", metadata={"error": dg.MetadataValue.text(value)})
    return value


def _build_in_fork(args: tuple[str, ...]) -> tuple[str, Any]:
    """("built", (tag, path)), ("failed", why) or ("stale", None)."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_forked_build, args=(sender, *args), daemon=True)
    child.start()
    sender.close()
    try:
        return receiver.recv() if receiver.poll(BUILD_TIMEOUT_S) else ("failed", "timed out")
    except EOFError:
        return "failed", f"the build process died (exit code {child.exitcode})"
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()


def _build_in_fresh_interpreter(source: Path, args: tuple[str, ...]) -> tuple[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", _FRESH_BUILD, *args],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    if completed.returncode != 0:
        return "failed", completed.stderr[-4000:]
    tag, path = completed.stdout.strip().splitlines()[-2:]
    return "built", (tag, path)


_FRESH_BUILD = (
    "import sys; from comfort_assets.defs.serving.assets import build_bento; "
    "print(*build_bento(*sys.argv[1:]), sep='\\n')"
)


def bentoml_home() -> Path:
    return Path(os.environ.get("BENTOML_HOME") or comfort_home() / "bentoml")


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
    tag, path = run_build(source, BENTO_NAME, version, home)
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
