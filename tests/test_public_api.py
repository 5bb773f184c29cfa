"""The package's public face: exported names, lazy loading, and the layering rules of DESIGN.md."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import holynb

ROOT = Path(__file__).resolve().parents[1]

# The only folder that may import IPython / ipywidgets: the notebook faces.
NOTEBOOK = ROOT / "holynb" / "notebook"
FRONTEND_PACKAGES = {"IPython", "ipywidgets", "ipykernel", "traitlets"}


def test_all_is_sorted_and_resolves() -> None:
    assert holynb.__all__ == sorted(holynb.__all__)
    extras = {"__version__", "load_ipython_extension", "unload_ipython_extension"}
    assert set(holynb.__all__) == set(holynb._EXPORTS) | extras
    for name in holynb.__all__:
        assert getattr(holynb, name) is not None, name


def test_dir_lists_public_names() -> None:
    assert set(holynb.__all__) <= set(dir(holynb))


def test_unknown_attribute_raises_attribute_error() -> None:
    try:
        holynb.DoesNotExist  # noqa: B018
    except AttributeError as exc:
        assert "DoesNotExist" in str(exc)
    else:  # pragma: no cover - the assertion is the test
        raise AssertionError("expected AttributeError")


def test_errors_share_one_base() -> None:
    for name in (
        "ConfigError",
        "AuthenticationError",
        "RateLimitError",
        "APIStatusError",
        "StreamInterrupted",
        "StreamTimeout",
        "MalformedChunkError",
    ):
        assert issubclass(getattr(holynb, name), holynb.HolyError), name


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _outside_notebook() -> list[Path]:
    return [p for p in sorted((ROOT / "holynb").rglob("*.py")) if NOTEBOOK not in p.parents]


def test_client_core_imports_no_ipython() -> None:
    offenders = []
    for path in _outside_notebook():
        for mod in _imported_modules(path):
            if mod.split(".")[0] in FRONTEND_PACKAGES:
                offenders.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not offenders, offenders


def test_only_the_package_root_reaches_the_notebook_faces() -> None:
    # The core never depends on the faces; the root's lazy exports name them as strings.
    offenders = []
    for path in _outside_notebook():
        for mod in _imported_modules(path):
            if mod.startswith("holynb.notebook") and path != ROOT / "holynb" / "__init__.py":
                offenders.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not offenders, offenders


def test_notebook_faces_live_in_one_folder() -> None:
    # No face module is left at the package root under an old name.
    stray = [
        p.name
        for p in (ROOT / "holynb").glob("*.py")
        if p.stem.startswith(("_magic", "_panel", "_render"))
    ]
    assert not stray, stray


def test_mockserver_imports_only_the_sse_decoder_from_holynb() -> None:
    offenders = []
    for path in sorted((ROOT / "mockserver").rglob("*.py")):
        for mod in _imported_modules(path):
            if mod.split(".")[0] == "holynb" and mod != "holynb.sse":
                offenders.append(f"{path.relative_to(ROOT)} imports {mod}")
    assert not offenders, offenders


def _loaded_after(imports: str, modules: tuple[str, ...]) -> str:
    """Which of ``modules`` a fresh interpreter has loaded after ``import <imports>``."""
    code = f"import sys, {imports}; print(','.join(m for m in {modules!r} if m in sys.modules))"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_import_holynb_is_lazy() -> None:
    out = _loaded_after("holynb", ("httpx", "aiohttp", "IPython", "ipywidgets"))
    assert out == "", f"'import holynb' pulled in heavy modules: {out}"


def _holynb_imports(path: Path) -> set[str]:
    """The holynb modules ``path`` imports (absolute imports, as holynb writes them)."""
    return {m for m in _imported_modules(path) if m == "holynb" or m.startswith("holynb.")}


def test_network_layer_rules() -> None:
    """The stream gets an opener, not the client; transports and APIs never reach up."""
    pkg = ROOT / "holynb"
    rules = {
        # module (or folder): modules it must not import
        "_stream.py": {"holynb._client", "holynb._sync", "holynb._transports"},
        "_retry.py": {"holynb._client", "holynb._stream", "holynb._transports"},
        "_transports": {"holynb._client", "holynb._stream", "holynb._sync"},
        "_apis": {"holynb._client", "holynb._stream", "holynb._sync", "holynb._transports"},
    }
    offenders = []
    for name, forbidden in rules.items():
        paths = sorted((pkg / name).glob("*.py")) if (pkg / name).is_dir() else [pkg / name]
        for path in paths:
            for mod in _holynb_imports(path):
                if any(mod == f or mod.startswith(f + ".") for f in forbidden):
                    offenders.append(f"{path.relative_to(ROOT)} imports {mod}")
    # In the client core, aiohttp stays inside the network layer and httpx is not used at all.
    core = ["_client.py", "_stream.py", "_sync.py", "_retry.py", "_config.py", "_errors.py",
            "_events.py", "_stats.py", "sse.py"]
    paths = [pkg / name for name in core] + sorted((pkg / "_apis").glob("*.py"))
    for path in [*paths, *sorted((pkg / "_transports").glob("*.py"))]:
        rel = path.relative_to(ROOT)
        for mod in _imported_modules(path):
            top = mod.split(".")[0]
            if top == "httpx":
                offenders.append(f"{rel} imports httpx")
            if top == "aiohttp" and path in paths:
                offenders.append(f"{rel} imports aiohttp outside holynb/_transports")
    assert not offenders, offenders


def test_only_loadtest_imports_locust_or_gevent() -> None:
    # Importing Locust monkey-patches the whole process (gevent): no other module may do it.
    offenders = []
    for path in sorted((ROOT / "holynb").rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.name == "loadtest.py":
            continue
        for mod in _imported_modules(path):
            top = mod.split(".")[0]
            if top in {"locust", "gevent"} or (
                rel.parts[1] == "bench" and top in {"IPython", "ipywidgets"}
            ):
                offenders.append(f"{rel} imports {mod}")
    assert not offenders, offenders
    out = _loaded_after(
        "holynb.bench, holynb.bench.cli, holynb.bench.locust_stats", ("locust", "gevent", "IPython")
    )
    assert out == "", f"holynb.bench pulled in {out}"
