"""Pure parts: the fault grammar, fault planning, the rate limiter, config validation."""

from __future__ import annotations

import random

import pytest

import mockserver
from mockserver import FaultError, Frame, MockConfig, parse_faults
from mockserver._faults import fired, merge_faults, plan_reply
from mockserver._ratelimit import RateLimiter
from mockserver.formats.chat import frame_kit


def test_public_names_match_all() -> None:
    import types

    public = {
        n for n, v in vars(mockserver).items()
        if n.isidentifier() and not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    assert sorted(mockserver.__all__) == sorted(public)


def test_grammar_parses_every_fault_with_defaults() -> None:
    specs = parse_faults(
        "status:code=429,retry_after=2; disconnect:after=5;reset;malformed:at=3;"
        "error-event:at=3;stall:after=3,ms=2000;slice:size=3;crlf;no-done;heartbeat:ms=500;"
        "ws-close:code=1011,after=4;fragment:size=2,p=0.25"
    )
    got = {s.name: (s.params, s.p) for s in specs}
    assert got["status"] == ({"code": 429, "retry_after": 2.0}, 1.0)
    assert got["reset"] == ({"after": 0}, 1.0)
    assert got["stall"] == ({"after": 3, "ms": 2000.0}, 1.0)
    assert got["crlf"] == ({}, 1.0)
    assert got["fragment"] == ({"size": 2}, 0.25)
    assert str(specs[0]) == "status:code=429,retry_after=2"
    assert parse_faults("") == [] and parse_faults(None) == [] and parse_faults(" ; ") == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("boom", "unknown fault 'boom'"),
        ("disconnect:after", "expected key=value"),
        ("disconnect:after=-1", "must be >= 0"),
        ("status:code=99", "between 400 and 599"),
        ("slice:size=x", "must be an integer"),
        ("crlf:x=1", "has no parameter 'x'"),
        ("stall:p=1.5", "between 0 and 1"),
        ("status:retry_after=1", "needs code"),
    ],
)
def test_grammar_errors_name_the_bad_part(text: str, fragment: str) -> None:
    with pytest.raises(FaultError, match=fragment.replace("(", r"\(")):
        parse_faults(text)


def test_merge_later_wins_and_probability_draws() -> None:
    merged = merge_faults(parse_faults("crlf;status:code=500"), parse_faults("status:code=429"))
    assert [str(s) for s in merged] == ["crlf", "status:code=429"]
    specs = parse_faults("crlf:p=0.5")
    draws = [bool(fired(specs, random.Random(i))) for i in range(200)]
    assert 60 < sum(draws) < 140


def test_plan_stall_shifts_only_later_frames() -> None:
    frames = [Frame(i / 10, b"data: x\n\n") for i in range(4)]
    plan = plan_reply(frames, {s.name: s for s in parse_faults("stall:after=2,ms=500")},
                      path="sse", kit=frame_kit("sse"))
    assert [f.at for f in list(plan.frames)] == pytest.approx([0.0, 0.1, 0.7, 0.8])


def test_rate_limiter_refills_continuously() -> None:
    now = [0.0]
    limiter = RateLimiter("2/s", clock=lambda: now[0])
    assert [limiter.acquire("k")[0] for _ in range(3)] == [True, True, False]
    assert limiter.acquire("k")[2] == pytest.approx(0.5)
    now[0] = 0.5
    assert limiter.acquire("k")[0] is True
    assert limiter.acquire("other")[0] is True


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"tps": -1}, "tps must be >= 0"),
        ({"jitter": "gaussian"}, "jitter must be one of"),
        ({"speed": -1}, "speed must be >= 0"),
        ({"fault": "nope"}, "unknown fault"),
        ({"rate_limit": "fast"}, "COUNT"),
        ({"keys": frozenset({"YOUR_HOLYSHEEP_API_KEY"})}, "real key"),
        ({"record_upstream": "ftp://x"}, "http"),
        ({"idle_timeout_s": 0}, "idle_timeout_s"),
    ],
)
def test_config_validation(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        MockConfig(**kwargs)


def test_config_repr_hides_keys() -> None:
    config = MockConfig(keys=frozenset({"sk-secret-value-1234"}))
    assert "sk-secret" not in repr(config)
    assert config.public()["keys"] == "1 keys"


def test_mockserver_modules_import_no_cycle() -> None:
    """Run-time imports inside mockserver form no cycle, and none hides inside a function
    (``if TYPE_CHECKING:`` imports are for annotations only)."""
    import ast
    from pathlib import Path

    root = Path(mockserver.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        name = ".".join(("mockserver", *path.relative_to(root).with_suffix("").parts))
        name = name.removesuffix(".__init__")
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = graph.setdefault(name, set())
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert not [n for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)
                            and (getattr(n, "module", "") or "").startswith(("mockserver", "."))
                            or isinstance(n, ast.ImportFrom) and n.level], (
                    f"{name}.{node.name} imports inside a function")
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
                deps.add(target)
                deps.update(f"{target}.{a.name}" for a in node.names)
    graph = {k: {d for d in v if d in graph} for k, v in graph.items()}
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> None:
        assert node not in trail, " -> ".join([*trail[trail.index(node):], node])
        if node in done:
            return
        for dep in sorted(graph[node]):
            if dep != node.rpartition(".")[0]:  # a submodule reading its package's names
                visit(dep, [*trail, node])
        done.add(node)

    for module in sorted(graph):
        visit(module, [])


def test_options_are_declared_once() -> None:
    """Every MockConfig field is a CLI flag and a MockServer keyword; nothing else is."""
    import dataclasses

    from mockserver._cli import build_parser, config_from_args

    fields = {f.name for f in dataclasses.fields(MockConfig)}
    dests = {a.dest for a in build_parser()._actions} - {"help", "no_cassettes"}
    assert dests == fields
    args = build_parser().parse_args(["--workers", "3", "--reasoning-tokens", "5",
                                      "--body-timeout", "2.5", "--keys", "sk-a-123456789,sk-b"])
    config = config_from_args(args)
    assert (config.workers, config.reasoning_tokens, config.body_timeout_s) == (3, 5, 2.5)
    assert config.keys == frozenset({"sk-a-123456789", "sk-b"}) and config.port == 8765
    assert mockserver.MockServer(reasoning_tokens=5).config.reasoning_tokens == 5
    with pytest.raises(TypeError, match="unknown mock option 'tpz'; known: host, port"):
        mockserver.MockServer(tpz=5)


def test_shared_store_reset_keeps_what_began_after_it(tmp_path) -> None:
    """A worker that has not yet seen another's reset drops only its records begun before it."""
    import time

    from mockserver._journal import Journal
    from mockserver._store import SharedStore

    a, b = SharedStore(tmp_path / "s.db", slot=0), SharedStore(tmp_path / "s.db", slot=1)
    old = Journal(b).begin("POST", "/v1/chat/completions", "sse")
    old.finish("completed")
    b.sync()
    assert [r["id"] for r in a.journal_page(0, None)] == [old.id]
    a.reset()
    time.sleep(0.01)
    new = Journal(b).begin("POST", "/v1/chat/completions", "json")  # b has not noticed yet
    assert new.id != old.id and new.id & 0xFC0 == 1 << 6  # b's slot, in its ids
    b.sync()
    assert [r["id"] for r in a.journal_page(0, None)] == [new.id]
    assert [r["id"] for r in b.journal_page(0, None)] == [new.id]
    new.finish("completed")
    b.sync()
    assert a.journal_page(0, None)[0]["outcome"] == "completed"
    for store in (a, b):
        store.close()


@pytest.mark.parametrize("shared", [False, True])
def test_stores_remember_conversations_for_every_worker(tmp_path, shared: bool) -> None:
    """What ``previous_response_id`` continues is kept where every worker sees it — the
    remembering worker at once, the others from its next publish (or journal flush) — bounded,
    and forgotten by a reset."""
    from mockserver._store import MEMORY_SIZE, MemoryStore, SharedStore

    a = SharedStore(tmp_path / "s.db", slot=0) if shared else MemoryStore()
    b = SharedStore(tmp_path / "s.db", slot=1) if shared else a
    doc = '[{"role": "user", "content": "hi"}]'
    a.remember("response:resp_1", doc)
    assert a.recall("response:resp_1") == doc
    assert b.recall("response:resp_1") == (None if shared else doc)
    a.publish()
    assert b.recall("response:resp_1") == doc
    for i in range(MEMORY_SIZE):
        b.remember(f"response:r{i}", "[]")
    b.publish()
    assert a.recall("response:resp_1") is None and a.recall(f"response:r{MEMORY_SIZE - 1}")
    a.remember("response:flushed", doc)
    if shared:
        a.sync()  # a reply that never reached its first event is written by the flush
    assert b.recall("response:flushed") == doc
    a.remember("response:pending", doc)
    b.reset()
    assert a.recall(f"response:r{MEMORY_SIZE - 1}") is None
    a.reset()
    assert a.recall("response:pending") is None
    a.publish()
    assert b.recall("response:pending") is None
    for store in {id(a): a, id(b): b}.values():
        store.close()
