"""Fast renderers of the exposition formats, byte for byte what prometheus_client writes.

prometheus_client's encoders check and escape every name of every sample; with
700 stations and peers that is most of a scrape. These check the names once per
family, keep each family's text between scrapes (:data:`RenderCache`), and hand
any family outside the classic character set (or with exemplars, native
histograms) to the library's own encoder, so the output never differs from it.
``tests/test_metrics.py`` compares both, family type by family type.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.samples import Sample

#: Rendered text by family: ``id(family)`` -> (family, its sample count, its text).
RenderCache = dict[int, tuple["Metric", int, str]]
#: The library's encoder for a collector (what ``choose_encoder`` returns).
Encoder = Callable[["Families"], bytes]
#: One family's text; the number formatter and the library's encoder for the rest.
FamilyRenderer = Callable[["Metric", Callable[[float], str], Encoder], str]
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


def _render(
    families: Iterable[Metric],
    cache: RenderCache | None,
    fallback: Encoder,
    family: FamilyRenderer,
    tail: str,
) -> bytes:
    from prometheus_client.utils import floatToGoString

    number = cast(Callable[[float], str], floatToGoString)
    out: list[str] = []
    kept: RenderCache = {}
    for metric in families:
        if cache is not None:
            hit = cache.get(id(metric))
            if hit is not None and hit[0] is metric and hit[1] == len(metric.samples):
                kept[id(metric)] = hit
                out.append(hit[2])
                continue
        text = family(metric, number, fallback)
        if cache is not None:
            kept[id(metric)] = (metric, len(metric.samples), text)
        out.append(text)
    if cache is not None:
        cache.clear()
        cache.update(kept)
    out.append(tail)
    return "".join(out).encode("utf-8")


def _family_text(metric: Metric, number: Callable[[float], str], fallback: Encoder) -> str:
    if not _plain_names(metric, _METRIC_NAME):
        return fallback(Families([metric])).decode()
    suffix, kind = _TYPES.get(metric.type, ("", metric.type))
    name = metric.name + suffix
    text = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
    out = [f"# HELP {name} {text}\n# TYPE {name} {kind}\n"]
    later: dict[str, list[str]] = {}
    for sample, pairs in _labelled(metric):
        line = f"{sample.name}{pairs} {number(sample.value)}"
        if sample.timestamp is not None:
            line += f" {int(float(sample.timestamp) * 1000):d}"
        extra = sample.name[len(metric.name) :]
        if extra in _OPENMETRICS_ONLY and sample.name.startswith(metric.name):
            later.setdefault(extra, []).append(line + "\n")
        else:
            out.append(line + "\n")
    for extra, lines in sorted(later.items()):
        out.append(f"# HELP {metric.name}{extra} {text}\n# TYPE {metric.name}{extra} gauge\n")
        out.extend(lines)
    return "".join(out)


def _family_openmetrics(metric: Metric, number: Callable[[float], str], fallback: Encoder) -> str:
    if not _plain_names(metric, _SAMPLE_NAME) or any(
        sample.exemplar or sample.native_histogram for sample in metric.samples
    ):
        return fallback(Families([metric])).decode().removesuffix(OPENMETRICS_EOF)
    name = metric.name
    text = _escape(metric.documentation)
    out = [f"# HELP {name} {text}\n# TYPE {name} {metric.type}\n"]
    if metric.unit:
        out.append(f"# UNIT {name} {metric.unit}\n")
    for sample, pairs in _labelled(metric):
        value = "" if sample.value is None else number(sample.value)
        if sample.timestamp is None:
            out.append(f"{sample.name}{pairs} {value}\n")
        else:
            out.append(f"{sample.name}{pairs} {value} {sample.timestamp}\n")
    return "".join(out)


def _labelled(metric: Metric) -> Iterator[tuple[Sample, str]]:
    """Each sample with its ``{k="v",...}`` (sorted by name, values escaped), or ""."""
    orders: dict[tuple[str, ...], list[str]] = {}
    for sample in metric.samples:
        labels = sample.labels
        if not labels:
            yield sample, ""
            continue
        keys = tuple(labels)
        order = orders.get(keys)
        if order is None:
            order = orders[keys] = sorted(keys)
        yield sample, "{" + ",".join(f'{k}="{_escape(labels[k])}"' for k in order) + "}"


def _plain_names(metric: Metric, samples: re.Pattern[str]) -> bool:
    """Whether every name is one the library writes as it is (``samples``: the
    pattern a sample's name must match)."""
    if not _METRIC_NAME.fullmatch(metric.name):
        return False
    seen: set[tuple[str, ...]] = set()
    for sample in metric.samples:
        if not samples.fullmatch(sample.name):
            return False
        keys = tuple(sample.labels)
        if keys not in seen:
            seen.add(keys)
            for key in keys:
                if not _LABEL_NAME.fullmatch(key) or key.startswith("__"):
                    return False
    return True


def _escape(value: str) -> str:
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value
