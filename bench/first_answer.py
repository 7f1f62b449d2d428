"""What ``raspapi serve``'s first ``GET /system`` costs beyond imports' own code:
the dataclasses made before it, and what one costs on this machine.

``python -m bench.first_answer`` builds the deferred app (as ``serve`` does) on
a copy of the fixture machine, answers one ``/system`` to write the plugin
manifest, then, in a fresh process, answers one more and lists the modules
imported and the dataclasses made by the time the answer leaves, with the
CPU time making each took (``dataclasses.dataclass``'s own work, counted in
the thread that made it: the plugins' first reads run in other threads
meanwhile, and wall time would count their turns too).

``--arm64`` (root) does the same inside the arm64 tree of
``bench.scenario_idle --arm64`` under qemu, with this checkout installed in
its venv, which is where the dataclasses' cost shows::

    sudo .venv/bin/python -m bench.first_answer --arm64

``python bench/first_answer.py --cost`` needs neither raspapi nor the fixture
machine, so it also runs inside the arm64 tree under qemu::

    sudo chroot /var/cache/raspapi-bench/arm64-* /opt/raspapi-venv/bin/python - --cost \
        < bench/first_answer.py

It times making a frozen dataclass of four fields (the commonest shape here),
the same with ``slots=True`` and without ``frozen``, and a
``typing.NamedTuple``, the median of 50.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parent.parent
KEY = "b" * 32


def cost(runs: int = 50) -> dict[str, float]:
    """Milliseconds to make one class of each kind (the median of ``runs``)."""
    fields = {"a": "int", "b": "str", "c": "int", "d": "float"}

    def frozen() -> object:
        return dataclasses.dataclass(frozen=True)(type("C", (), {"__annotations__": dict(fields)}))

    def frozen_slots() -> object:
        cls = type("C", (), {"__annotations__": dict(fields)})
        return dataclasses.dataclass(frozen=True, slots=True)(cls)

    def plain() -> object:
        return dataclasses.dataclass(type("C", (), {"__annotations__": dict(fields)}))

    def named() -> object:
        return NamedTuple("C", [("a", int), ("b", str), ("c", int), ("d", float)])

    def median_ms(make: Callable[[], object]) -> float:
        make()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            make()
            times.append(time.perf_counter() - start)
        return round(statistics.median(times) * 1000, 3)

    return {
        "frozen_dataclass_ms": median_ms(frozen),
        "frozen_slots_dataclass_ms": median_ms(frozen_slots),
        "dataclass_ms": median_ms(plain),
        "namedtuple_ms": median_ms(named),
    }


_ANSWER = """
import asyncio, dataclasses, json, sys, time
from pathlib import Path

made = []
_process_class = dataclasses._process_class


def counting(cls, *args, **kwargs):
    start = time.thread_time()
    made_cls = _process_class(cls, *args, **kwargs)
    made.append((f"{cls.__module__}.{cls.__qualname__}", time.thread_time() - start))
    return made_cls


dataclasses._process_class = counting
import raspapi.cli, raspapi.daemon.server  # what `raspapi serve` imports
from raspapi.app import create_app
from raspapi.settings import Settings

tmp, root, key = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
settings = Settings(env_file=tmp / ".env", root=root, state_dir=tmp / "state",
                    plugins_dir=tmp / "plugins.d", access_log=False, entry_points=False)


async def first_answer() -> dict:
    app = create_app(settings, deferred=True)
    seen = {}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            seen.update(status=message["status"], modules=sorted(sys.modules),
                        dataclasses=[name for name, _ in made],
                        dataclass_ms={name: round(t * 1000, 2) for name, t in made})

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/system", "raw_path": b"/system",
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", 8081), "headers": [(b"access_token", key.encode())]}
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)
    return seen


print(json.dumps(asyncio.run(first_answer())))
"""


def first_answers(
    prefix: Sequence[str] = (sys.executable,), tree: Path | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two starts' first /system, each in a fresh process on one state folder:
    the first without a plugin manifest (it writes one, as a first boot does),
    the second with it. Each: its status, the modules imported and the
    dataclasses made (and their milliseconds) by the time the answer left.

    ``prefix`` runs Python: ``chroot TREE ... python`` for the arm64 tree, then
    ``tree`` is that tree (the folder is made in its /var/tmp, and the program
    gets the paths as the tree sees them)."""
    folder = tree / "var/tmp" if tree is not None else None
    with tempfile.TemporaryDirectory(prefix="raspapi-first-", dir=folder) as name:
        tmp = Path(name)
        inside = Path("/") / tmp.relative_to(tree) if tree is not None else tmp
        shutil.copytree(REPO / "tests/fixtures/root", tmp / "root", symlinks=True)
        env = tmp / ".env"
        env.write_text(f"RASPAP_API_KEY={KEY}\n", encoding="ascii")
        env.chmod(0o600)
        results = []
        for _ in range(2):
            done = subprocess.run(
                [*prefix, "-c", _ANSWER, str(inside), str(inside / "root"), KEY],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"the first answer failed:\n{done.stderr[-2000:]}")
            results.append(json.loads(done.stdout.splitlines()[-1]))
        return results[0], results[1]


def arm64_first_answers() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """:func:`first_answers` in the arm64 tree, this checkout installed there,
    and :func:`cost` there (this file run by the tree's Python)."""
    from bench.scenario_idle import build_arm64_tree, in_tree, install_arm64

    def say(line: str) -> None:
        print(line, file=sys.stderr)

    tree = build_arm64_tree(say)
    venv = install_arm64(tree, say)
    prefix = in_tree(tree, [f"{venv}/bin/python"])
    costs = subprocess.run(
        [*prefix, "-", "--cost"],
        input=Path(__file__).read_text(encoding="utf-8"),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(costs.stdout), *first_answers(prefix, tree)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--cost", action="store_true", help="only time making the classes")
    parser.add_argument("--arm64", action="store_true", help="the first answer in the arm64 tree")
    args = parser.parse_args(argv)
    out: dict[str, Any]
    if args.cost:
        print(json.dumps({"python": sys.version.split()[0], **cost()}, indent=2))
        return 0
    if args.arm64:
        out, _, answer = arm64_first_answers()
    else:
        out = {"python": sys.version.split()[0], **cost()}
        _, answer = first_answers()
    if answer.get("status") != 200:
        print(f"/system answered {answer.get('status')}", file=sys.stderr)
        return 2
    made: dict[str, float] = answer["dataclass_ms"]
    out["modules_at_first_answer"] = len(answer["modules"])
    out["dataclasses_before_first_answer"] = len(answer["dataclasses"])
    out["dataclasses_ms"] = round(sum(made.values()), 1)
    out["dataclasses"] = dict(sorted(made.items(), key=lambda item: -item[1]))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
