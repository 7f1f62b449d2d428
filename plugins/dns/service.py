"""The dns plugin's domain: RaspAP's ad-block lists, dnsmasq's upstream servers and its log.

The ad-block lists reach hundreds of thousands of lines. Each is parsed once
per change of the file (its mtime, size and inode) into a ready JSON body and
the offsets of its items, so RaspAP's routes send bytes that already exist and
``/api/v1/dns/domains`` pages without copying the list. The log is read from
its end, a bounded number of bytes.
"""

from __future__ import annotations

import math
import os
import re
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

from raspapi.plugin import PluginContext, open_regular, rfc3339

from .._dnsmasq import dnsmasq_files
from .schema import LOG_FILE, MAX_LIST_BYTES, MAX_LIST_ENTRIES

DOMAINS_FILE = "/etc/raspap/adblock/domains.txt"
HOSTNAMES_FILE = "/etc/raspap/adblock/hostnames.txt"
RESOLV_FILE = "/run/dnsmasq/resolv.conf"
#: A list line longer than this is not a domain: it is skipped.
MAX_LINE = 4096
#: Log tails are read in these sizes (lines); each reads at most LOG_BYTES_PER_LINE per line.
LOG_BUCKETS = (500, 5000)
LOG_BYTES_PER_LINE = 1024

T = TypeVar("T")
Stamp = tuple[int, int, int]


# -- files parsed once per change ------------------------------------------------


class Memo(Generic[T]):
    """The last parse of one file, redone only when the file changes.

    A change is a new (mtime_ns, size, inode); the stamp is taken from the open
    file, so the value always belongs to the stamp it is stored with. Only
    regular files are read (a FIFO would block).
    """

    def __init__(self, path: Path, parse: Callable[[IO[bytes], os.stat_result], T], empty: T):
        self.path = path
        self.parse = parse
        self.empty = empty
        self.stamp: Stamp | None = None
        self.value = empty

    def load(self) -> T:
        fh = open_regular(self.path)
        if fh is None:
            self.stamp, self.value = None, self.empty
            return self.empty
        with fh:
            st = os.fstat(fh.fileno())
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp != self.stamp:
                self.value = self.parse(fh, st)
                self.stamp = stamp
        return self.value


async def memoized(
    ctx: PluginContext,
    key: str,
    path: str,
    parse: Callable[[IO[bytes], os.stat_result], T],
    empty: T,
) -> T:
    """``parse`` of ``path``, checked for changes at most once per cache TTL."""
    # The memo lives as long as the plugin's cache: it holds the last parse.
    memo: Memo[T] = await ctx.cache.get(
        ("memo", key), lambda: Memo(ctx.path(path), parse, empty), ttl=math.inf
    )
    return await ctx.cache.get(key, memo.load)


class Lines:
    """The lines of a file, at most ``max_bytes`` of it; overlong lines are skipped."""

    def __init__(self, fh: IO[bytes], max_bytes: int, max_line: int = MAX_LINE) -> None:
        self.fh = fh
        self.max_bytes = max_bytes
        self.max_line = max_line
        self.truncated = False

    def __iter__(self) -> Iterator[bytes]:
        left = self.max_bytes
        skipping = False
        while True:
            if left <= 0:
                self.truncated = bool(self.fh.read(1))
                return
            want = min(self.max_line, left)
            line = self.fh.readline(want)
            if not line:
                return
            left -= len(line)
            complete = line.endswith(b"\n") or len(line) < want
            if skipping:
                skipping = not complete
            elif complete:
                yield line
            elif want == self.max_line:
                skipping = True


# -- ad-block lists ------------------------------------------------------------------


@dataclass(frozen=True)
class BlockList:
    """A list as a ready JSON body ``{"<key>":[...]}`` plus where each item starts."""

    key: str
    body: bytes
    offsets: array[int]
    present: bool
    truncated: bool = False
    modified_at: float | None = None
    etag: str | None = None

    @property
    def count(self) -> int:
        return len(self.offsets)

    def page(self, offset: int, limit: int) -> bytes:
        """Items ``offset`` to ``offset + limit`` as a JSON array."""
        total = len(self.offsets)
        if offset >= total or limit <= 0:
            return b"[]"
        stop = offset + limit
        end = self.offsets[stop] - 1 if stop < total else len(self.body) - 2
        return b"[" + self.body[self.offsets[offset] : end] + b"]"

    @classmethod
    def empty(cls, key: str) -> BlockList:
        return cls(key, b'{"%s":[]}' % key.encode(), array("I"), present=False)

    @classmethod
    def build(cls, key: str, names: Iterator[bytes], st: os.stat_result, lines: Lines) -> BlockList:
        head = b'{"%s":[' % key.encode()
        body = bytearray(head)
        offsets = array("I")
        seen: set[bytes] = set()
        truncated = False
        for name in names:
            if name in seen:
                continue
            if len(offsets) >= MAX_LIST_ENTRIES:
                truncated = True
                break
            seen.add(name)
            if offsets:
                body += b","
            offsets.append(len(body))
            body += encode_basestring(name.decode("utf-8", "replace")).encode()
        body += b"]}"
        return cls(
            key,
            bytes(body),
            offsets,
            present=True,
            truncated=truncated or lines.truncated,
            modified_at=st.st_mtime,
            etag=f'"{st.st_mtime_ns:x}-{st.st_size:x}-{st.st_ino:x}"',
        )


_LIST_DIRECTIVES = (b"address=/", b"local=/", b"server=/")


def domain_names(lines: Lines) -> Iterator[bytes]:
    """Domains of dnsmasq lines ``address=/<domain>[/<domain>...]/<answer>``."""
    for raw in lines:
        line = raw.strip()
        if not line.startswith(_LIST_DIRECTIVES):
            continue
        parts = line.split(None, 1)[0].split(b"/")
        for name in parts[1:-1]:
            if name and name != b"#":
                yield name


#: Names a hosts-file list maps for the machine itself (StevenBlack's header): not blocked.
_LOCAL_NAMES = frozenset(
    b"localhost localhost.localdomain local broadcasthost ip6-localhost ip6-loopback "
    b"ip6-localnet ip6-mcastprefix ip6-allnodes ip6-allrouters ip6-allhosts 0.0.0.0".split()
)


def host_names(lines: Lines) -> Iterator[bytes]:
    """Names of hosts-file lines ``0.0.0.0 <host> [<host>...]``."""
    for raw in lines:
        fields = raw.split(b"#", 1)[0].split()
        if len(fields) < 2 or not (b"." in fields[0] or b":" in fields[0]):
            continue
        for name in fields[1:]:
            if name not in _LOCAL_NAMES:
                yield name


def parse_domains(fh: IO[bytes], st: os.stat_result) -> BlockList:
    lines = Lines(fh, MAX_LIST_BYTES)
    return BlockList.build("domains", domain_names(lines), st, lines)


def parse_hostnames(fh: IO[bytes], st: os.stat_result) -> BlockList:
    lines = Lines(fh, MAX_LIST_BYTES)
    return BlockList.build("hostnames", host_names(lines), st, lines)


LISTS: dict[str, tuple[str, Callable[[IO[bytes], os.stat_result], BlockList]]] = {
    "domains": (DOMAINS_FILE, parse_domains),
    "hostnames": (HOSTNAMES_FILE, parse_hostnames),
}


async def block_list(ctx: PluginContext, key: str) -> BlockList:
    path, parse = LISTS[key]
    return await memoized(ctx, key, path, parse, BlockList.empty(key))


# -- the log ------------------------------------------------------------------------

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_LOG_LINE = re.compile(
    r"^(?P<time>(?P<month>[A-Z][a-z]{2}) (?P<day>[ \d]?\d) (?P<hms>\d\d:\d\d:\d\d)"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r" (?:[^\s:]+ )?"  # a host name, when syslog wrote one
    r"(?P<process>[^\s:\[\]]+)(?:\[(?P<pid>\d+)\])?:(?: (?P<message>.*))?$"
)


@dataclass(frozen=True)
class LogEntry:
    time_text: str
    logged_at: str | None
    process: str
    pid: int | None
    message: str

    def legacy(self) -> dict[str, str]:
        process = self.process if self.pid is None else f"{self.process}[{self.pid}]"
        return {"timestamp": self.time_text, "process": process, "message": self.message}

    def api(self) -> dict[str, Any]:
        return {
            "logged_at": self.logged_at,
            "time_text": self.time_text,
            "process": self.process,
            "pid": self.pid,
            "message": self.message,
        }


def parse_log_line(line: str, now: datetime) -> LogEntry | None:
    """One syslog-style line (``Aug  7 13:46:36 dnsmasq[812]: ...``), or None."""
    match = _LOG_LINE.match(line)
    if match is None:
        return None
    pid = match.group("pid")
    return LogEntry(
        time_text=match.group("time"),
        logged_at=_logged_at(match, now),
        process=match.group("process"),
        pid=int(pid) if pid is not None and len(pid) < 10 else None,
        message=match.group("message") or "",
    )


def _logged_at(match: re.Match[str], now: datetime) -> str | None:
    """The line's time in UTC. Syslog's has no year or zone: local time, this
    year unless that is more than a day ahead (then last year)."""
    try:
        if match.group("month"):
            month = _MONTHS.get(match.group("month"))
            if month is None:
                return None
            hour, minute, second = (int(x) for x in match.group("hms").split(":"))
            day = int(match.group("day"))
            when = datetime(now.year, month, day, hour, minute, second)
            if when > now + timedelta(days=1):
                when = when.replace(year=now.year - 1)
        else:
            when = datetime.fromisoformat(match.group("time"))
        epoch = when.astimezone(UTC).timestamp()
    except (ValueError, OverflowError, OSError):
        return None
    return rfc3339(epoch, lenient=True)


def tail_lines(fh: IO[bytes], size: int, max_lines: int, max_bytes: int) -> list[bytes]:
    """The last ``max_lines`` lines of a file, reading at most ``max_bytes`` from its end."""
    pos = size
    budget = max_bytes
    chunks: list[bytes] = []
    newlines = 0
    while pos > 0 and budget > 0 and newlines <= max_lines:
        step = min(64 * 1024, pos, budget)
        pos -= step
        budget -= step
        fh.seek(pos)
        chunk = fh.read(step)
        chunks.append(chunk)
        newlines += chunk.count(b"\n")
    lines = b"".join(reversed(chunks)).split(b"\n")
    if pos > 0:
        lines = lines[1:]  # the first line was cut
    if lines and not lines[-1]:
        lines.pop()
    return lines[-max_lines:]


def log_parser(bucket: int) -> Callable[[IO[bytes], os.stat_result], list[LogEntry]]:
    def parse(fh: IO[bytes], st: os.stat_result) -> list[LogEntry]:
        now = datetime.now()
        entries = []
        for raw in tail_lines(fh, st.st_size, bucket, bucket * LOG_BYTES_PER_LINE):
            entry = parse_log_line(raw.decode("utf-8", "replace").rstrip("\r"), now)
            if entry is not None:
                entries.append(entry)
        return entries

    return parse


async def log_tail(ctx: PluginContext, limit: int) -> list[LogEntry]:
    """The last ``limit`` entries of the log, from its last ``limit`` lines or a few
    more (malformed lines are left out)."""
    if limit <= 0:
        return []
    bucket = next((b for b in LOG_BUCKETS if b >= limit), LOG_BUCKETS[-1])
    empty: list[LogEntry] = []
    tail = await memoized(ctx, f"log:{bucket}", LOG_FILE, log_parser(bucket), empty)
    return tail[-limit:]


# -- upstream servers and ad-block configuration ---------------------------------------


def upstream_servers(text: str) -> list[str]:
    servers = []
    for raw in text.splitlines():
        fields = raw.split("#", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            servers.append(fields[1])
    return servers


def adblock_config(ctx: PluginContext) -> list[str]:
    """The dnsmasq files that load an ad-block list (``conf-file=``/``addn-hosts=``)."""
    loading = []
    wanted = {("conf-file", DOMAINS_FILE), ("addn-hosts", HOSTNAMES_FILE)}
    for file in dnsmasq_files(ctx):
        for raw in (ctx.read_text(file) or "").splitlines():
            name, _, value = raw.split("#", 1)[0].strip().partition("=")
            if (name.strip(), value.strip()) in wanted:
                loading.append(file)
                break
    return loading


class Dns:
    """The ad-block lists, the upstream servers and the log, each read in a
    thread and cached (the lists and the log until their file changes)."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx

    async def block_list(self, key: str) -> BlockList:
        return await block_list(self.ctx, key)

    async def log_tail(self, limit: int) -> list[LogEntry]:
        return await log_tail(self.ctx, limit)

    async def upstream(self) -> list[str]:
        return await self.ctx.cache.get(
            "upstream", lambda: upstream_servers(self.ctx.read_text(RESOLV_FILE) or "")
        )

    async def files(self) -> list[str]:
        return await self.ctx.cache.get("files", lambda: dnsmasq_files(self.ctx))

    async def summary(self, log_limit: int) -> dict[str, Any]:
        """Ad-block state and list sizes, upstream servers and the log's last lines."""
        loaded_by = await self.ctx.cache.get("adblock", lambda: adblock_config(self.ctx))
        lists = {}
        for key in LISTS:
            blocks = await self.block_list(key)
            lists[key] = {
                "file": LISTS[key][0],
                "present": blocks.present,
                "count": blocks.count,
                "truncated": blocks.truncated,
                "modified_at": rfc3339(blocks.modified_at, lenient=True),
            }
        entries = await self.log_tail(log_limit)
        return {
            "adblock": {"enabled": bool(loaded_by), "config_files": loaded_by, **lists},
            "upstream_servers": await self.upstream(),
            "log": [entry.api() for entry in entries],
        }

    async def page(self, key: str, offset: int, limit: int) -> bytes:
        """One page of a list as a JSON object, built from the list's ready bytes."""
        blocks = await self.block_list(key)
        head = b'{"total":%d,"offset":%d,"limit":%d,"truncated":%s,"%s":' % (
            blocks.count,
            offset,
            limit,
            b"true" if blocks.truncated else b"false",
            key.encode(),
        )
        return head + blocks.page(offset, limit) + b"}"
