"""Flow arrival processes: the one generator of arrival times in the project.

Both the scenario scheduler (:func:`scenarios.spec.flow_schedule`, one stretch of constant
rate at a time) and the traffic generator's plans (:class:`scenarios.traffic.plan.
ArrivalProcess`) draw their flow start times from :func:`arrival_times`:

* ``constant``: arrivals at ``start + n / rate`` (``n = 0, 1, ...``), no random draw;
* ``poisson``: exponential gaps of mean ``1 / rate``; the first arrival is at
  ``start + Exp(rate)``, one ``rng.expovariate(rate)`` draw per arrival plus the one
  that crosses ``until``.

Arrivals stop before ``until`` (an arrival within :data:`EPS` of it counts as at it, so
``constant`` arrivals never land on ``until`` by rounding) or after ``count`` arrivals.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

PROCESSES = ("constant", "poisson")
EPS = 1e-9


def arrival_times(process: str, rate: float, rng: random.Random, start: float = 0.0,
                  until: float | None = None, count: int | None = None) -> Iterator[float]:
    """Arrival times (s, increasing) of ``process`` at ``rate`` arrivals/s from ``start``.

    Lazy: endless without ``until`` and ``count``. ``rate`` must be > 0.
    """
    if process not in PROCESSES:
        raise ValueError(f"unknown arrival process {process!r} (known: {', '.join(PROCESSES)})")
    if not rate > 0:
        raise ValueError(f"arrival rate must be > 0, got {rate!r}")
    n = 0
    t = start
    while count is None or n < count:
        if process == "poisson":
            t += rng.expovariate(rate)
        else:
            t = start + n / rate
        if until is not None and t >= until - EPS:
            return
        yield t
        n += 1
