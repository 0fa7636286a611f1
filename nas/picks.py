"""Choosing networks from a run's Pareto front, the way MixNet's S/M/L span a compute range.

Everything here is a pure function over the ``run.pareto`` DataFrame (columns at least
``number, arch, accuracy, mflops``; ``params`` is used to break ties when present), so it
can be tested on hand-made frames and reused by plots. The pick folders that retraining
writes, and the marks of the retrained picks on the front's plot, are
:mod:`nas.runs.pick_folders`'.

**Tiers** (the default). Let ``lo``/``hi`` be the smallest and largest MFLOPs on the
front. The log-MFLOPs range ``[log lo, log hi]`` is cut into ``n`` equal parts (``n=3``
for ``s,m,l``); tier ``i`` (1-based) has the upper bound ``lo * (hi/lo) ** (i/n)``, i.e.
the geometric points at 1/3, 2/3 and 3/3 of the way from ``lo`` to ``hi``. A tier's pick
is the most accurate front member at or under its bound, so ``s`` is the best network
within the cheapest third of the (log) compute range, ``m`` within two thirds and ``l``
is the most accurate network overall. Log scale because compute ranges are
multiplicative (MixNet-S/M/L: 256/360/565 MFLOPs).

When the front has at least as many networks as tiers, the tiers pick different networks,
in MFLOPs order: each tier chooses among the members costlier than the tier below's pick
(leaving one costlier member for each tier above), and when none of those is under its
bound it takes the cheapest of them, the network nearest above the bound. (Without this, a
front with a gap just above the ``m`` bound gives ``m`` = ``s``.)

**Value** (``by="value"``, ``nas retrain --pick-by value``). The same tiers, but a tier's
pick is the member that stands furthest above the run's *own* cost curve: a least-squares
quadratic of accuracy in log2(MFLOPs) over ``peers`` (the run's full-fidelity trials; the
front itself when not given). Accuracy mostly follows cost, so "most accurate under the
bound" tends to take the costliest member under it, whatever its value for that cost; the
value rule takes the network with the most accuracy *for its cost*, which is what beating a
random network of the same cost asks for (``benchmarks/bench_search_quality.py``). The
curve is the finals' choice of finalists applied to the finished trials
(:func:`cost_residuals`).

**Targets** (``--targets 3,8,20``): the most accurate front member with MFLOPs at or
under each target. A target below the cheapest front member is an input error.

Tiers and targets are always in MFLOPs (every trial has them), whatever cost objective
the run's front was built on (``mflops``, ``params`` or ``latency_ms``).

Ties on accuracy go to fewer MFLOPs, then fewer params, then the lower trial number.
If the front has fewer networks than tiers, two names can pick the same trial; the
pick says so in ``same_as``. Targets are independent limits and can repeat a trial too.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

from nas.errors import NasInputError

#: Default tier names, cheapest first.
TIER_NAMES: tuple[str, ...] = ("s", "m", "l")

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Pick:
    """One chosen architecture.

    ``name`` is the folder name under ``results/<run>/picks/``; ``bound`` the MFLOPs
    limit it was chosen under (None for ``--trial``/``--arch``/``--space`` picks);
    ``number`` the trial number (None when not from the run); ``same_as`` the name of an
    earlier pick in the same selection with the same trial, if any.
    """

    name: str
    arch: str
    number: int | None = None
    accuracy: float | None = None
    mflops: float | None = None
    params: float | None = None
    bound: float | None = None
    source: str = "tier"
    same_as: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def check_pick_name(name: str) -> str:
    """A pick name is a folder name: letters, digits, ``.``, ``_``, ``-`` (max 64)."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in (".", ".."):
        raise NasInputError(
            f"pick name {name!r} is not usable as a folder name (letters, digits, '.', '_', '-'; max 64)"
        )
    return name


def parse_names(text: str) -> list[str]:
    """``"s,m,l"`` -> ``["s", "m", "l"]`` (checked, no duplicates)."""
    names = [part.strip() for part in str(text).split(",") if part.strip()]
    names = [n.lower() if n.lower() in TIER_NAMES else n for n in names]  # S/M/L == s/m/l
    if not names:
        raise NasInputError(f"--pick {text!r}: give at least one name, e.g. s,m,l")
    seen: set[str] = set()
    for name in names:
        check_pick_name(name)
        if name in seen:
            raise NasInputError(f"--pick {text!r}: name {name!r} given twice")
        seen.add(name)
    return names


def parse_targets(text: str) -> list[float]:
    """``"3,8,20"`` -> ``[3.0, 8.0, 20.0]`` MFLOPs (positive, finite)."""
    targets: list[float] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(part)
        except ValueError:
            raise NasInputError(f"--targets: {part!r} is not a number (MFLOPs, e.g. 3,8,20)") from None
        if not math.isfinite(value) or value <= 0:
            raise NasInputError(f"--targets: {part!r} must be a positive number of MFLOPs")
        targets.append(value)
    if not targets:
        raise NasInputError(f"--targets {text!r}: give at least one MFLOPs target, e.g. 3,8,20")
    return targets


def clean_front(front) -> "pd.DataFrame":  # noqa: F821
    """Front rows usable for picking: finite accuracy and positive MFLOPs, known arch."""
    import pandas as pd

    if not isinstance(front, pd.DataFrame):
        raise NasInputError(f"expected a pandas DataFrame for the front, got {type(front).__name__}")
    missing = [c for c in ("number", "arch", "accuracy", "mflops") if c not in front.columns]
    if missing:
        raise NasInputError(f"the Pareto front has no column(s) {', '.join(missing)}")
    df = front.copy()
    df["accuracy"] = pd.to_numeric(df["accuracy"], errors="coerce")
    df["mflops"] = pd.to_numeric(df["mflops"], errors="coerce")
    ok = df["accuracy"].map(_finite) & df["mflops"].map(_finite) & (df["mflops"] > 0)
    ok &= df["arch"].map(lambda a: isinstance(a, str) and bool(a.strip()))
    return df[ok]


def tier_bounds(mflops: Iterable[float], n: int = 3) -> list[float]:
    """Upper MFLOPs bounds of ``n`` tiers: geometric points i/n of the way from min to max."""
    values = [float(v) for v in mflops if _finite(v) and float(v) > 0]
    if not values:
        raise NasInputError("the Pareto front is empty: no trial with both accuracy and MFLOPs")
    if n < 1:
        raise NasInputError(f"need at least one tier, got {n}")
    lo, hi = min(values), max(values)
    bounds = [lo * (hi / lo) ** (i / n) for i in range(1, n + 1)]
    bounds[-1] = hi  # exact, no rounding drift on the last one
    return bounds


def describe_bound(bound: float, mflops: float | None) -> str:
    """``<= 3.54`` for a pick at or under its MFLOPs bound; ``nearest above 3.54`` for a tier
    pick that had to go above it to stay a network of its own."""
    if mflops is not None and _finite(mflops) and float(mflops) > bound * (1 + 1e-9):
        return f"nearest above {bound:.3g}"
    return f"<= {bound:.3g}"


def best_under(front, bound: float, score: str = "accuracy"):
    """The row of ``front`` with the highest ``score`` (a column: ``accuracy``, or ``value``)
    and ``mflops <= bound`` (None if there is none).

    Ties: fewer MFLOPs, then fewer params, then lower trial number.
    """
    df = clean_front(front)
    # A hair of relative slack so a bound computed from a member's own MFLOPs includes it.
    df = df[df["mflops"] <= bound * (1 + 1e-9)]
    if df.empty:
        return None
    return _sort_best_first(df, score=score).iloc[0]


def _sort_best_first(df, cost_first: bool = False, score: str = "accuracy"):
    """Rows with the best ``score`` first, ties to fewer MFLOPs, fewer params, lower trial
    number (``cost_first``: fewest MFLOPs first, then the same order)."""
    keys = [score, "mflops"]
    ascending = [False, True]
    if cost_first:
        keys, ascending = keys[::-1], ascending[::-1]
    if "params" in df.columns:
        df = df.assign(_params=_numeric_or_inf(df["params"]))
        keys.append("_params")
        ascending.append(True)
    keys.append("number")
    ascending.append(True)
    return df.sort_values(keys, ascending=ascending, kind="mergesort").drop(columns="_params", errors="ignore")


#: How a tier chooses among its members: ``accuracy`` (the default) or ``value`` (see the module doc).
PICK_RULES: tuple[str, ...] = ("accuracy", "value")


def cost_curve(mflops: Sequence[float], accuracy: Sequence[float]):
    """The least-squares quadratic of accuracy in log2(MFLOPs) over these points (a line, or the
    mean, when there are too few distinct costs for a quadratic), as a function of MFLOPs."""
    import numpy as np

    x = np.log2(np.asarray(mflops, dtype=float))
    y = np.asarray(accuracy, dtype=float)
    degree = min(2, len(np.unique(x)) - 1)
    coef = np.polyfit(x, y, degree) if degree > 0 else np.array([y.mean()])
    return lambda m: np.polyval(coef, np.log2(np.asarray(m, dtype=float)))


def cost_residuals(mflops: Sequence[float], accuracy: Sequence[float]) -> list[float]:
    """Each point's accuracy minus the :func:`cost_curve` of these same points."""
    curve = cost_curve(mflops, accuracy)
    return [float(a - c) for a, c in zip(accuracy, curve(mflops))]


def with_value(front, peers=None):
    """``front`` with a ``value`` column: each member's accuracy minus the :func:`cost_curve`
    fitted on ``peers`` and the front (rows with ``accuracy`` and ``mflops``; default the front)."""
    import pandas as pd

    df = clean_front(front)
    pool = df
    if peers is not None:
        peers = clean_front(peers)
        pool = pd.concat([peers, df[~df["number"].isin(peers["number"])]])
    curve = cost_curve(pool["mflops"], pool["accuracy"])
    return df.assign(value=df["accuracy"] - curve(df["mflops"]))


def pick_tiers(front, names: Sequence[str] = TIER_NAMES, n: int | None = None, by: str = "accuracy",
               peers=None) -> list[Pick]:
    """One pick per tier name (cheapest tier first); ``n`` tiers (default ``len(names)``).

    With the default names, ``names`` may be any subset of ``s,m,l`` (``["m"]`` picks the
    middle of three tiers). Other names need ``len(names) == n``. ``by`` is the tier's rule
    (:data:`PICK_RULES`); ``peers`` the trials the ``value`` rule fits its cost curve on.
    """
    if by not in PICK_RULES:
        raise NasInputError(f"pick rule {by!r}: one of {', '.join(PICK_RULES)}")
    df = clean_front(front)
    if by == "value" and not df.empty:
        df = with_value(df, peers)
    names = list(names)
    if n is None:
        if set(names) <= set(TIER_NAMES):
            n = len(TIER_NAMES)
            index = {name: TIER_NAMES.index(name) for name in names}
        else:
            n = len(names)
            index = {name: i for i, name in enumerate(names)}
    else:
        if len(names) != n:
            raise NasInputError(f"{len(names)} pick name(s) for {n} tiers")
        index = {name: i for i, name in enumerate(names)}
    bounds = tier_bounds(df["mflops"], n)
    rows = tier_rows(df, bounds, score="value" if by == "value" else "accuracy")
    source = "tier" if by == "accuracy" else "tier:value"
    return _dedupe([_pick_from_row(name, rows[index[name]], bounds[index[name]], source) for name in names])


def tier_rows(front, bounds: Sequence[float], score: str = "accuracy") -> list:
    """The front row each tier picks (cheapest tier first): the best ``score`` under its bound;
    distinct rows when the front has at least ``len(bounds)`` networks (see the module docstring)."""
    df = clean_front(front)
    n = len(bounds)
    networks = _sort_best_first(df).drop_duplicates("arch")  # one row per network: its best trial
    if len(networks) < n:
        return [best_under(df, bound, score) for bound in bounds]
    by_cost = _sort_best_first(networks, cost_first=True).reset_index(drop=True)
    rows, start = [], 0
    for i, bound in enumerate(bounds):
        candidates = by_cost.iloc[start:len(by_cost) - (n - 1 - i)]
        row = best_under(candidates, bound, score)
        if row is None:  # nothing left under the bound: the nearest network above it
            row = candidates.iloc[0]
        rows.append(row)
        start = int(row.name) + 1
    return rows


def pick_targets(front, targets: Sequence[float], names: Sequence[str] | None = None) -> list[Pick]:
    """The most accurate front member at or under each MFLOPs target.

    Names default to ``s,m,l`` for three targets, else ``le<target>`` (``le8``, ``le2.5``).
    """
    df = clean_front(front)
    if df.empty:
        raise NasInputError("the Pareto front is empty: no trial with both accuracy and MFLOPs")
    targets = [float(t) for t in targets]
    if names is None:
        names = list(TIER_NAMES) if len(targets) == len(TIER_NAMES) else [f"le{t:g}" for t in targets]
    names = list(names)
    if len(names) != len(targets):
        raise NasInputError(f"{len(names)} pick name(s) ({','.join(names)}) for {len(targets)} target(s)")
    picks = []
    for name, target in zip(names, targets):
        row = best_under(df, target)
        if row is None:
            raise NasInputError(
                f"--targets: no front member at or under {target:g} MFLOPs "
                f"(the cheapest has {float(df['mflops'].min()):.3g} MFLOPs)"
            )
        picks.append(_pick_from_row(check_pick_name(name), row, target, "target"))
    return _dedupe(picks)


def pick_trial(trials, number: int, name: str | None = None) -> Pick:
    """The trial with this number (from ``run.trials`` or ``run.pareto``), as a pick ``trial-N``."""
    import pandas as pd

    if not isinstance(trials, pd.DataFrame) or "number" not in trials.columns or "arch" not in trials.columns:
        raise NasInputError("the run's trials table has no 'number'/'arch' columns")
    rows = trials[pd.to_numeric(trials["number"], errors="coerce") == int(number)]
    if rows.empty:
        raise NasInputError(f"--trial {number}: no such trial in the run")
    row = rows.iloc[0]
    if not isinstance(row["arch"], str) or not row["arch"].strip():
        raise NasInputError(f"--trial {number}: the trial has no architecture recorded")
    return _pick_from_row(check_pick_name(name or f"trial-{int(number)}"), row, None, "trial")


def pick_arch(arch: str, name: str | None = None, source: str = "arch") -> Pick:
    """An explicit genotype as a pick; the name defaults to ``arch-<8 hex of its hash>``."""
    import hashlib

    from nas.genotype import Arch

    canonical = str(Arch.parse(arch)) if isinstance(arch, str) else str(arch)
    if name is None:
        name = "arch-" + hashlib.sha1(canonical.encode()).hexdigest()[:8]
    return Pick(name=check_pick_name(name), arch=canonical, source=source)


def picks_frame(picks: Sequence[Pick]):
    """The picks as a DataFrame (one row per pick) — handy for plots and tables."""
    import pandas as pd

    return pd.DataFrame([p.to_dict() for p in picks],
                        columns=list(Pick.__dataclass_fields__))


# ---------------------------------------------------------------- helpers


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _numeric_or_inf(series):
    import pandas as pd

    return pd.to_numeric(series, errors="coerce").fillna(math.inf)


def _opt_float(row, key: str) -> float | None:
    if key not in row.index:
        return None
    return float(row[key]) if _finite(row[key]) else None


def _pick_from_row(name: str, row, bound: float | None, source: str) -> Pick:
    if row is None:  # cannot happen for tiers (the cheapest member is under every bound)
        raise NasInputError(f"pick {name}: no front member under {bound:g} MFLOPs")
    number = row["number"] if "number" in row.index else None
    return Pick(
        name=name,
        arch=str(row["arch"]),
        number=int(number) if _finite(number) else None,
        accuracy=_opt_float(row, "accuracy"),
        mflops=_opt_float(row, "mflops"),
        params=_opt_float(row, "params"),
        bound=bound,
        source=source,
    )


def _dedupe(picks: list[Pick]) -> list[Pick]:
    out: list[Pick] = []
    first: dict[tuple, str] = {}
    for p in picks:
        key = (p.number, p.arch)
        if key in first:
            p = Pick(**{**p.to_dict(), "same_as": first[key]})
        else:
            first[key] = p.name
        out.append(p)
    return out


__all__ = [
    "PICK_RULES",
    "Pick",
    "TIER_NAMES",
    "best_under",
    "check_pick_name",
    "clean_front",
    "cost_residuals",
    "describe_bound",
    "parse_names",
    "parse_targets",
    "pick_arch",
    "pick_targets",
    "pick_tiers",
    "pick_trial",
    "picks_frame",
    "tier_bounds",
    "tier_rows",
]
