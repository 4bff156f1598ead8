"""Prometheus text exposition (format 0.0.4) of the gateway's and the worker's counters.

Where a figure is one llama-server also exports, it has llama-server's name and type
(``llamacpp:prompt_tokens_total``, ``llamacpp:tokens_predicted_total``,
``llamacpp:requests_processing``, ``llamacpp:requests_deferred``, ...), so dashboards made
for llama.cpp read both; the settlement figures are ``decentral:*``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self._help: dict[str, tuple[str, str]] = {}  # name → (type, help)
        self._values: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
        self._gauges: dict[str, Callable[[], float]] = {}
        self._histograms: dict[str, tuple[list[int], list[float]]] = {}  # name → (bucket counts, [sum, count])

    def counter(self, name: str, help: str) -> None:
        self._help[name] = ("counter", help)

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        self._help[name] = ("gauge", help)
        self._gauges[name] = read

    def histogram(self, name: str, help: str) -> None:
        self._help[name] = ("histogram", help)
        self._histograms[name] = ([0] * len(LATENCY_BUCKETS), [0.0, 0.0])

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        series = self._values[name]
        series[key] = series.get(key, 0) + amount

    def observe(self, name: str, value: float) -> None:
        buckets, total = self._histograms[name]
        for i, bound in enumerate(LATENCY_BUCKETS):
            if value <= bound:
                buckets[i] += 1
        total[0] += value
        total[1] += 1

    def get(self, name: str, **labels: str) -> float:
        return self._values[name].get(tuple(sorted(labels.items())), 0)

    def render(self) -> str:
        lines = []
        for name, (kind, help) in self._help.items():
            lines += [f"# HELP {name} {help}", f"# TYPE {name} {kind}"]
            if kind == "gauge":
                lines.append(f"{name} {_number(self._gauges[name]())}")
            elif kind == "histogram":
                buckets, (total, count) = self._histograms[name]
                for bound, n in zip(LATENCY_BUCKETS, buckets, strict=True):
                    lines.append(f'{name}_bucket{{le="{bound}"}} {n}')
                lines += [f'{name}_bucket{{le="+Inf"}} {int(count)}', f"{name}_sum {_number(total)}"]
                lines.append(f"{name}_count {int(count)}")
            else:
                series = self._values[name] or {(): 0}
                for key, value in series.items():
                    labels = ",".join(f'{k}="{v}"' for k, v in key)
                    lines.append(f"{name}{{{labels}}} {_number(value)}" if labels else f"{name} {_number(value)}")
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
