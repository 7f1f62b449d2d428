"""The one way plugins run programs: argument lists, timeouts, capped output."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("raspapi.runner")

#: Where programs are looked for, under the configured root first.
SYSTEM_BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
#: Never handed to a child process.
_SECRET_ENV = ("RASPAP_API_KEY",)


class CommandError(Exception):
    """A program could not be run, or did not succeed."""

    def __init__(self, args: Sequence[str], message: str) -> None:
        super().__init__(f"{args[0] if args else '?'}: {message}")
        self.argv = list(args)
        self.message = message


class CommandNotFound(CommandError):
    pass


class CommandTimeout(CommandError):
    pass


class OutputTooLarge(CommandError):
    pass


class CommandFailed(CommandError):
    def __init__(self, args: Sequence[str], returncode: int, stderr: bytes) -> None:
        # The first line says what failed; later ones tend to be hints such
        # as systemctl's "See 'systemctl status ...' for details".
        lines = [line.strip() for line in stderr.decode(errors="replace").splitlines()]
        reason = next((line for line in lines if line), "no message")
        super().__init__(args, f"exited with status {returncode}: {reason}")
        self.returncode = returncode
        self.stderr = stderr


class CommandResult(NamedTuple):
    args: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")


class CommandRunner:
    """Runs programs as asyncio subprocesses; never through a shell."""

    def __init__(
        self,
        root: Path = Path("/"),
        *,
        timeout: float = 10.0,
        max_output: int = 4 * 1024 * 1024,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_output = max_output
        base = dict(os.environ if environ is None else environ)
        for name in _SECRET_ENV:
            base.pop(name, None)
        base["LC_ALL"] = "C"
        self.env = base
        dirs = [str(root / d.lstrip("/")) for d in SYSTEM_BIN_DIRS] if root != Path("/") else []
        dirs += base.get("PATH", os.defpath).split(os.pathsep)
        dirs += [d for d in SYSTEM_BIN_DIRS if d not in dirs]
        self.search_path = os.pathsep.join(dict.fromkeys(d for d in dirs if d))

    def which(self, program: str) -> str | None:
        """The program's full path: under the root first, then on PATH."""
        if os.sep in program:
            return program if os.access(program, os.X_OK) else None
        return shutil.which(program, path=self.search_path)

    async def run(
        self,
        args: Sequence[str],
        *,
        timeout: float | None = None,
        max_output: int | None = None,
        check: bool = True,
        input: bytes | None = None,
    ) -> CommandResult:
        """Run ``args`` and return its output.

        Raises CommandNotFound, CommandTimeout, OutputTooLarge, or (with
        ``check``) CommandFailed on a non-zero exit.
        """
        if not args or isinstance(args, str):
            raise TypeError("args must be a non-empty list of strings")
        argv = [str(a) for a in args]
        program = self.which(argv[0])
        if program is None:
            raise CommandNotFound(argv, "not installed")
        limit = self.max_output if max_output is None else max_output
        log.debug("run %s", argv)
        # Input goes through a real pipe, never the loop's own stdin transport:
        # uvloop makes that a socket pair, and a program that opens /dev/stdin
        # by path (`wg set ... preshared-key /dev/stdin`) cannot open a socket.
        stdin_read, stdin_write = os.pipe() if input is not None else (None, None)
        try:
            proc = await asyncio.create_subprocess_exec(
                program,
                *argv[1:],
                stdin=stdin_read if stdin_read is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self.env,
                start_new_session=True,
            )
        except OSError as exc:
            _close(stdin_read, stdin_write)
            raise CommandError(argv, f"cannot start: {exc.strerror or exc}") from exc
        _close(stdin_read)
        try:
            async with asyncio.timeout(self.timeout if timeout is None else timeout):
                assert proc.stdout is not None and proc.stderr is not None
                reading = asyncio.gather(
                    _read_capped(proc.stdout, limit), _read_capped(proc.stderr, limit)
                )
                if stdin_write is not None and input is not None:
                    fd, stdin_write = stdin_write, None  # _feed owns and closes it
                    (stdout, stderr), _ = await asyncio.gather(reading, _feed(fd, input))
                else:
                    stdout, stderr = await reading
                returncode = await proc.wait()
        except TimeoutError:
            _kill(proc)
            await proc.wait()
            raise CommandTimeout(argv, f"timed out after {timeout or self.timeout:g} s") from None
        except OutputTooLarge:
            _kill(proc)
            await proc.wait()
            raise OutputTooLarge(argv, f"printed more than {limit} bytes") from None
        except BaseException:
            _kill(proc)
            raise
        finally:
            _close(stdin_write)
        result = CommandResult(tuple(argv), returncode, stdout, stderr)
        if check and returncode != 0:
            raise CommandFailed(argv, returncode, stderr)
        return result


async def _feed(fd: int, data: bytes) -> None:
    """Write ``data`` to the pipe ``fd`` without blocking the loop, then close it.

    A program that exits without reading all of its input (a broken pipe) is
    not an error here: its exit status says whether it failed.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    pipe = os.fdopen(fd, "wb", buffering=0)
    try:
        transport, _ = await loop.connect_write_pipe(lambda: _Feeder(done), pipe)
    except BaseException:
        pipe.close()
        raise
    transport.write(data)
    transport.close()  # after the buffer is flushed, or at once on a broken pipe
    await done


class _Feeder(asyncio.Protocol):
    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


def _close(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


async def _read_capped(stream: asyncio.StreamReader, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(65536):
        size += len(chunk)
        if size > limit:
            raise OutputTooLarge([], "too much output")
        chunks.append(chunk)
    return b"".join(chunks)


def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
