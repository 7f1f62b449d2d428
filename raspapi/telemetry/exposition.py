"""Fast renderers of the exposition formats, byte for byte what prometheus_client writes.

prometheus_client's encoders check and escape every name of every sample; with
700 stations and peers that is most of a scrape. These check each name once per
family, format each label set and value once per rendering (a station's labels
recur in each of its families), keep each family's text between scrapes
(:data:`RenderCache`), and hand any family outside the classic character set
(or with exemplars, native histograms) to the library's own encoder, so the
output never differs from it. ``tests/test_metrics_exposition.py`` compares
both, family type by family type, in every format a scraper can negotiate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

#: Rendered text by family: ``id(family)`` -> (family, its sample count, its text).
RenderCache = dict[int, tuple["Metric", int, str]]
#: The library's encoder for a collector (what ``choose_encoder`` returns).
Encoder = Callable[["Families"], bytes]
#: One family's text (raises _NotPlain for one left to the library's encoder).
FamilyRenderer = Callable[["Metric", "_Memo"], str]
Renderer = Callable[[Iterable["Metric"], "RenderCache | None", "Encoder | None"], bytes]

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
#: OpenMetrics sample names: the library's default escaping turns a colon into "_"
#: in a sample's name (not in its family's), so colons go to the library.
_SAMPLE_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_LABEL_NAME = _SAMPLE_NAME
#: How prometheus_client's text format renames a family's type (and suffixes it).
_TYPES = {
    "counter": ("_total", "counter"),
    "info": ("_info", "gauge"),
    "stateset": ("", "gauge"),
    "gaugehistogram": ("", "histogram"),
    "unknown": ("", "untyped"),
}
_OPENMETRICS_ONLY = ("_created", "_gsum", "_gcount")
#: The name escapings that leave a classic name as it is (the others rewrite "_").
_PLAIN_ESCAPINGS = (None, "underscores", "allow-utf-8")
OPENMETRICS_EOF = "# EOF\n"


class Families:
    """A collector holding families already gathered (what the library's encoders read)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def _text_encoder() -> Encoder:
    from prometheus_client.exposition import generate_latest

    return cast(Encoder, generate_latest)


def _openmetrics_encoder() -> Encoder:
    from prometheus_client.openmetrics.exposition import generate_latest

    return cast(Encoder, generate_latest)


def render_text(
    families: Iterable[Metric], cache: RenderCache | None = None, fallback: Encoder | None = None
) -> bytes:
    """The Prometheus text format (0.0.4), byte for byte what prometheus_client's
    ``generate_latest`` (or ``fallback``, the encoder ``choose_encoder`` gave) writes.

    With ``cache``, a family object rendered by the previous call (the same object,
    with as many samples) is not rendered again: a plugin that serves the families of
    its last refresh until the next one is rendered once per refresh. The cache keeps
    only the families of this call."""
    return _render(families, cache, fallback or _text_encoder(), _family_text, "")


def render_openmetrics(
    families: Iterable[Metric], cache: RenderCache | None = None, fallback: Encoder | None = None
) -> bytes:
    """OpenMetrics 1.0 text, byte for byte what prometheus_client's OpenMetrics
    ``generate_latest`` (or ``fallback``) writes, ``# EOF`` included; ``cache`` as
    for :func:`render_text` (one cache per format: the texts differ)."""
    encoder = fallback or _openmetrics_encoder()
    return _render(families, cache, encoder, _family_openmetrics, OPENMETRICS_EOF)


def renderer_for(content_type: str) -> Renderer | None:
    """The fast renderer writing what the library writes for ``content_type`` (the
    type ``choose_encoder`` answered), or None for a format left to the library."""
    media, _, rest = content_type.partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        key, _, value = part.strip().partition("=")
        params[key] = value
    if params.get("escaping") not in _PLAIN_ESCAPINGS:
        return None
    version = params.get("version")
    if media == "text/plain" and version in ("0.0.4", "1.0.0"):
        return render_text
    if media == "application/openmetrics-text" and version == "1.0.0":
        return render_openmetrics
    return None


class _NotPlain(Exception):
    """A name the library would write otherwise, an exemplar, a native histogram."""


class _Memo:
    """What one rendering formats once and reuses: label sets (a station's or a
    peer's labels recur in each of its families) and sample values."""

    def __init__(self) -> None:
        from prometheus_client.utils import floatToGoString

        self._number = cast(Callable[[float], str], floatToGoString)
        self.labels: dict[tuple[tuple[str, str], ...], str] = {(): ""}
        self.numbers: dict[float, str] = {}
        self._names: set[str] = set()

    # The renderers look ``numbers`` and ``labels`` up themselves (the hot path) and
    # call these on a miss.

    def number(self, value: float) -> str:
        text = self._number(value)
        if value != 0:  # 0.0 and -0.0 are equal keys but written differently
            self.numbers[value] = text
        return text

    def pairs(self, labels: dict[str, str]) -> str:
        """``{k="v",...}`` sorted by name, values escaped; "" without labels."""
        for name in labels:
            if name not in self._names:
                if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                    raise _NotPlain(name)
                self._names.add(name)
        text = "{" + ",".join(f'{k}="{_escape(labels[k])}"' for k in sorted(labels)) + "}"
        self.labels[tuple(labels.items())] = text
        return text


def _render(
    families: Iterable[Metric],
    cache: RenderCache | None,
    fallback: Encoder,
    family: FamilyRenderer,
    tail: str,
) -> bytes:
    memo = _Memo()
    out: list[str] = []
    kept: RenderCache = {}
    for metric in families:
        if cache is not None:
            hit = cache.get(id(metric))
            if hit is not None and hit[0] is metric and hit[1] == len(metric.samples):
                kept[id(metric)] = hit
                out.append(hit[2])
                continue
        try:
            text = family(metric, memo)
        except _NotPlain:
            text = fallback(Families([metric])).decode()
            if tail:  # the library's own end of the text (# EOF)
                text = text.removesuffix(tail)
        if cache is not None:
            kept[id(metric)] = (metric, len(metric.samples), text)
        out.append(text)
    if cache is not None:
        cache.clear()
        cache.update(kept)
    out.append(tail)
    return "".join(out).encode("utf-8")


def _family_text(metric: Metric, memo: _Memo) -> str:
    """The classic text (raises _NotPlain for a name outside the classic set)."""
    if not _METRIC_NAME.fullmatch(metric.name):
        raise _NotPlain(metric.name)
    suffix, kind = _TYPES.get(metric.type, ("", metric.type))
    name = metric.name + suffix
    text = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
    out = [f"# HELP {name} {text}\n# TYPE {name} {kind}\n"]
    later: dict[str, list[str]] = {}
    #: Each sample name checked, with the OpenMetrics-only suffix it has ("" if none).
    checked: dict[str, str] = {}
    numbers, known = memo.numbers.get, memo.labels.get
    for sample_name, labels, value, timestamp, _, _ in metric.samples:
        extra = checked.get(sample_name)
        if extra is None:
            if not _METRIC_NAME.fullmatch(sample_name):
                raise _NotPlain(sample_name)
            extra = sample_name[len(metric.name) :]
            if extra not in _OPENMETRICS_ONLY or not sample_name.startswith(metric.name):
                extra = ""
            checked[sample_name] = extra
        pairs = known(tuple(labels.items()))
        if pairs is None:
            pairs = memo.pairs(labels)
        shown = numbers(value) or memo.number(value)
        if timestamp is None:
            line = f"{sample_name}{pairs} {shown}\n"
        else:
            line = f"{sample_name}{pairs} {shown} {int(float(timestamp) * 1000):d}\n"
        if extra:
            later.setdefault(extra, []).append(line)
        else:
            out.append(line)
    for extra, lines in sorted(later.items()):
        out.append(f"# HELP {metric.name}{extra} {text}\n# TYPE {metric.name}{extra} gauge\n")
        out.extend(lines)
    return "".join(out)


def _family_openmetrics(metric: Metric, memo: _Memo) -> str:
    """OpenMetrics, without ``# EOF`` (raises _NotPlain for what the library writes
    otherwise: colons or other characters in names, exemplars, native histograms)."""
    name = metric.name
    if not _METRIC_NAME.fullmatch(name):
        raise _NotPlain(name)
    text = _escape(metric.documentation)
    out = [f"# HELP {name} {text}\n# TYPE {name} {metric.type}\n"]
    if metric.unit:
        out.append(f"# UNIT {name} {metric.unit}\n")
    checked: set[str] = set()
    numbers, known = memo.numbers.get, memo.labels.get
    for sample_name, labels, value, timestamp, exemplar, native in metric.samples:
        if exemplar or native:
            raise _NotPlain(sample_name)
        if sample_name not in checked:
            if not _SAMPLE_NAME.fullmatch(sample_name):
                raise _NotPlain(sample_name)
            checked.add(sample_name)
        pairs = known(tuple(labels.items()))
        if pairs is None:
            pairs = memo.pairs(labels)
        shown = "" if value is None else numbers(value) or memo.number(value)
        if timestamp is None:
            out.append(f"{sample_name}{pairs} {shown}\n")
        else:
            out.append(f"{sample_name}{pairs} {shown} {timestamp}\n")
    return "".join(out)


def _escape(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value
