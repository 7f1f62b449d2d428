"""What ``raspapi serve``'s first ``GET /system`` costs beyond imports' own code:
the dataclasses made before it, and what one costs on this machine.

``python -m bench.first_answer`` builds the deferred app (as ``serve`` does) on
a copy of the fixture machine, answers one ``/system`` to write the plugin
manifest, then, in a fresh process, answers one more and lists the modules
imported and the dataclasses made by the time the answer leaves.

``python bench/first_answer.py --cost`` needs neither raspapi nor the fixture
machine, so it also runs inside the arm64 tree under qemu::

    sudo chroot /var/cache/raspapi-bench/arm64-* /opt/raspapi-venv/bin/python - --cost \
        < bench/first_answer.py

It times making a frozen dataclass of four fields (the commonest shape here),
the same without ``frozen``, and a ``typing.NamedTuple``, the median of 50.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parent.parent
KEY = "b" * 32


def cost(runs: int = 50) -> dict[str, float]:
    """Milliseconds to make one class of each kind (the median of ``runs``)."""
    fields = {"a": "int", "b": "str", "c": "int", "d": "float"}

    def frozen() -> object:
        return dataclasses.dataclass(frozen=True)(type("C", (), {"__annotations__": dict(fields)}))

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
        "dataclass_ms": median_ms(plain),
        "namedtuple_ms": median_ms(named),
    }


_ANSWER = """
import asyncio, dataclasses, json, sys
from pathlib import Path

made = []
_process_class = dataclasses._process_class


def counting(cls, *args, **kwargs):
    made.append(f"{cls.__module__}.{cls.__qualname__}")
    return _process_class(cls, *args, **kwargs)


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
                        dataclasses=list(made))

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/system", "raw_path": b"/system",
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", 8081), "headers": [(b"access_token", key.encode())]}
    async with app.router.lifespan_context(app):
        await app(scope, receive, send)
    return seen


print(json.dumps(asyncio.run(first_answer())))
"""


def first_answers() -> tuple[dict[str, Any], dict[str, Any]]:
    """Two starts' first /system, each in a fresh process on one state folder:
    the first without a plugin manifest (it writes one, as a first boot does),
    the second with it. Each: its status, the modules imported and the
    dataclasses made by the time the answer left."""
    with tempfile.TemporaryDirectory(prefix="raspapi-first-") as folder:
        tmp = Path(folder)
        root = tmp / "root"
        shutil.copytree(REPO / "tests/fixtures/root", root, symlinks=True)
        env = tmp / ".env"
        env.write_text(f"RASPAP_API_KEY={KEY}\n", encoding="ascii")
        env.chmod(0o600)
        results = []
        for _ in range(2):
            done = subprocess.run(
                [sys.executable, "-c", _ANSWER, str(tmp), str(root), KEY],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"the first answer failed:\n{done.stderr[-2000:]}")
            results.append(json.loads(done.stdout.splitlines()[-1]))
        return results[0], results[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--cost", action="store_true", help="only time making the classes")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {"python": sys.version.split()[0], **cost()}
    if not args.cost:
        _, answer = first_answers()
        if answer.get("status") != 200:
            print(f"/system answered {answer.get('status')}", file=sys.stderr)
            return 2
        out["modules_at_first_answer"] = len(answer["modules"])
        out["dataclasses_before_first_answer"] = len(answer["dataclasses"])
        out["dataclasses"] = answer["dataclasses"]
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
