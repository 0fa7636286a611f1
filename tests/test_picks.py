"""Picks from a Pareto front: pure functions on hand-made DataFrames."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from nas.errors import NasInputError
from nas.picks import (
    Pick,
    best_under,
    cost_curve,
    cost_residuals,
    describe_bound,
    parse_names,
    parse_targets,
    pick_arch,
    pick_targets,
    pick_tiers,
    pick_trial,
    picks_frame,
    tier_bounds,
)
from nas.runs.pick_folders import load_picks, mark_picks

ARCH = "stem c8 | ds k3 c8 | head c0"


def front(rows):
    """rows: (number, accuracy, mflops[, params])."""
    out = []
    for r in rows:
        number, acc, mf = r[:3]
        params = r[3] if len(r) > 3 else 1000 + number
        out.append(dict(number=number, arch=f"stem c{8 + number} | ds k3 c8 | head c0", accuracy=acc,
                        mflops=mf, params=params, state="COMPLETE", fidelity=1, duration_s=1.0))
    return pd.DataFrame(out)


def test_tier_bounds_are_geometric_thirds():
    b = tier_bounds([1.0, 8.0, 3.0], 3)
    assert b == pytest.approx([2.0, 4.0, 8.0])
    assert tier_bounds([5.0], 3) == pytest.approx([5.0, 5.0, 5.0])


def test_tiers_pick_most_accurate_under_each_bound():
    # bounds: 2, 4, 8 MFLOPs
    df = front([(0, 0.80, 1.0), (1, 0.85, 1.9), (2, 0.88, 3.0), (3, 0.90, 4.0), (4, 0.93, 8.0), (5, 0.89, 2.5)])
    s, m, l = pick_tiers(df)
    assert (s.name, s.number, s.bound) == ("s", 1, pytest.approx(2.0))
    assert (m.name, m.number) == ("m", 3)  # at the bound counts
    assert (l.name, l.number) == ("l", 4)
    assert s.accuracy == pytest.approx(0.85) and s.mflops == pytest.approx(1.9)
    assert all(p.same_as is None for p in (s, m, l))
    assert s.source == "tier"


def test_value_rule_takes_the_most_accuracy_for_its_cost_not_the_costliest():
    # bounds 2, 4, 8. Peers: accuracy rises 2 points per doubling; trial 1 (1.2 MFLOPs) stands
    # 1 point above that line, trial 2 (2.0) a little below it: accuracy takes 2 (the more
    # accurate, the costliest under the bound), value takes 1.
    df = front([(0, 0.80, 1.0), (1, 0.815, 1.2), (2, 0.819, 2.0), (3, 0.84, 4.0), (4, 0.86, 8.0)])
    peers = pd.concat([df, front([(10, 0.80, 1.0), (11, 0.82, 2.0), (12, 0.84, 4.0), (13, 0.86, 8.0)])])
    by_accuracy = pick_tiers(df)
    s, m, l = pick_tiers(df, by="value", peers=peers)
    assert by_accuracy[0].number == 2
    assert s.number == 1 and s.source == "tier:value"
    assert s.mflops < m.mflops < l.mflops  # still three networks in cost order
    assert l.number == 4  # the only member left for the last tier


def test_value_rule_without_peers_fits_the_front_and_rejects_unknown_rules():
    df = front([(0, 0.80, 1.0), (1, 0.83, 1.5), (2, 0.835, 2.0), (3, 0.86, 4.0), (4, 0.87, 8.0)])
    (s, m, l) = pick_tiers(df, by="value")
    residual = dict(zip(df["number"], cost_residuals(df["mflops"], df["accuracy"])))
    assert residual[1] > residual[2] and s.number == 1
    with pytest.raises(NasInputError, match="pick rule 'best'"):
        pick_tiers(df, by="best")


def test_cost_curve_is_quadratic_in_log_cost_and_degrades_with_few_points():
    curve = cost_curve([1, 2, 4, 8], [0.8, 0.82, 0.84, 0.86])
    assert float(curve(16)) == pytest.approx(0.88)
    assert cost_residuals([1, 2, 4], [0.8, 0.9, 0.8])[1] == pytest.approx(0.0, abs=1e-9)  # 3 points: exact fit
    assert cost_residuals([2, 2], [0.8, 0.9]) == pytest.approx([-0.05, 0.05])  # one cost: the mean


def _assert_three_networks_in_cost_order(s, m, l):
    assert len({s.number, m.number, l.number}) == 3 and len({s.arch, m.arch, l.arch}) == 3
    assert s.mflops < m.mflops < l.mflops
    assert (s.same_as, m.same_as, l.same_as) == (None, None, None)


def test_a_gap_above_the_m_bound_still_gives_three_networks():
    """The reference run's front: nothing between 2.61 and the m bound 3.54, so m used to be s."""
    df = front([(201, 0.752, 2.330552), (175, 0.758, 2.470296), (135, 0.770, 2.612888), (60, 0.775, 3.564344),
                (82, 0.778, 3.916088), (68, 0.784, 4.359656)])
    s, m, l = pick_tiers(df)
    _assert_three_networks_in_cost_order(s, m, l)
    assert (s.number, m.number, l.number) == (135, 60, 68)  # m: the nearest network above its bound
    assert m.bound == pytest.approx(3.538, abs=1e-3)
    assert describe_bound(m.bound, m.mflops) == "nearest above 3.54"
    assert describe_bound(s.bound, s.mflops) == "<= 2.87"
    (m_alone,) = pick_tiers(df, ["m"])  # a subset picks what the full selection picks
    assert m_alone.number == 60


def test_three_networks_all_under_the_s_bound_are_three_picks():
    df = front([(0, 0.80, 1.0), (1, 0.85, 1.1), (2, 0.90, 8.0)])  # bounds 2, 4, 8
    s, m, l = pick_tiers(df)
    _assert_three_networks_in_cost_order(s, m, l)
    assert (s.number, m.number, l.number) == (0, 1, 2)


def test_random_fronts_give_distinct_ordered_meaningful_picks():
    import random

    rng = random.Random(0)
    for _ in range(300):
        size = rng.randint(3, 12)
        costs = sorted(rng.sample(range(10, 5000), size))
        accs = sorted(rng.sample(range(500, 1000), size))
        df = front([(i, a / 1000, c / 100) for i, (a, c) in enumerate(zip(accs, costs))])
        s, m, l = pick_tiers(df)
        _assert_three_networks_in_cost_order(s, m, l)
        assert l.number == size - 1  # the most accurate network
        # s is the best network under its bound whenever that leaves room for m and l
        best_s = best_under(df, s.bound)
        if int(best_s["number"]) <= size - 3:
            assert s.number == int(best_s["number"])
        assert s.mflops <= s.bound * (1 + 1e-9)
        # m is under its bound, or (nothing costlier than s is) the next network after s
        by_cost = list(df.sort_values("mflops")["number"])
        assert m.mflops <= m.bound * (1 + 1e-9) or by_cost.index(m.number) == by_cost.index(s.number) + 1


def test_the_same_network_twice_on_a_front_is_one_network():
    df = front([(0, 0.80, 1.0), (1, 0.81, 1.0), (2, 0.90, 8.0)])
    df.loc[1, "arch"] = df.loc[0, "arch"]  # two trials of one genotype
    s, m, l = pick_tiers(df)
    assert (s.number, m.number, l.number) == (1, 1, 2) and m.same_as == "s"


def test_reference_run_picks_three_networks():
    from pathlib import Path

    import nas

    reference = Path(__file__).resolve().parents[1] / "results" / "reference"
    if not (reference / "config.json").is_file():
        pytest.skip("no committed reference run")
    run = nas.load_run(reference)
    s, m, l = pick_tiers(run.pareto)
    _assert_three_networks_in_cost_order(s, m, l)
    assert s.mflops <= s.bound * (1 + 1e-9)  # s stays the best network in the cheapest tier
    assert s.number == int(best_under(run.pareto, s.bound)["number"])
    assert l.accuracy == pytest.approx(float(run.pareto["accuracy"].max()))


def test_tier_subset_keeps_three_tiers():
    df = front([(0, 0.80, 1.0), (1, 0.85, 1.9), (3, 0.90, 4.0), (4, 0.93, 8.0)])
    (m,) = pick_tiers(df, ["m"])
    assert m.number == 3


def test_custom_tier_names_make_that_many_tiers():
    df = front([(0, 0.80, 1.0), (1, 0.90, 10.0)])
    a, b = pick_tiers(df, ["small", "big"])  # bounds sqrt(10), 10
    assert (a.number, b.number) == (0, 1)


def test_ties_go_to_cheaper_then_fewer_params_then_lower_number():
    df = front([(0, 0.9, 2.0, 50), (1, 0.9, 1.5, 90), (2, 0.9, 1.5, 60), (3, 0.9, 1.5, 60)])
    assert int(best_under(df, 10.0)["number"]) == 2


def test_small_front_marks_duplicates():
    df = front([(7, 0.9, 3.0)])
    s, m, l = pick_tiers(df)
    assert s.number == m.number == l.number == 7
    assert (s.same_as, m.same_as, l.same_as) == (None, "s", "s")


def test_unusable_rows_are_ignored():
    df = front([(0, float("nan"), 1.0), (1, 0.7, 2.0), (2, 0.99, float("nan")), (3, 0.8, 0.0)])
    s, m, l = pick_tiers(df)
    assert s.number == m.number == l.number == 1


def test_empty_front_is_an_input_error():
    with pytest.raises(NasInputError, match="empty"):
        pick_tiers(front([(0, float("nan"), 1.0)]))
    with pytest.raises(NasInputError, match="column"):
        pick_tiers(pd.DataFrame({"number": [1]}))


def test_targets():
    df = front([(0, 0.80, 1.0), (1, 0.85, 2.9), (2, 0.88, 7.0), (3, 0.90, 9.0), (4, 0.93, 19.0)])
    s, m, l = pick_targets(df, [3, 8, 20])
    assert [p.name for p in (s, m, l)] == ["s", "m", "l"]
    assert [p.number for p in (s, m, l)] == [1, 2, 4]
    assert s.bound == 3 and s.source == "target"
    a, b = pick_targets(df, [1, 2.5])
    assert (a.name, b.name) == ("le1", "le2.5")
    assert (a.number, b.number) == (0, 0) and b.same_as == "le1"
    (x,) = pick_targets(df, [100], names=["xl"])
    assert x.name == "xl" and x.number == 4
    with pytest.raises(NasInputError, match="0.5 MFLOPs.*cheapest has 1 MFLOPs"):
        pick_targets(df, [0.5])
    with pytest.raises(NasInputError, match="target"):
        pick_targets(df, [1, 2], names=["s"])


def test_parsers():
    assert parse_names(" s, m ,l") == ["s", "m", "l"]
    assert parse_names("S,M,L") == ["s", "m", "l"]
    assert parse_targets("3, 8,20") == [3.0, 8.0, 20.0]
    for bad in ("", "s,s", "a/b", ".."):
        with pytest.raises(NasInputError):
            parse_names(bad)
    for bad in ("", "3,x", "-1", "inf", "0"):
        with pytest.raises(NasInputError):
            parse_targets(bad)


def test_trial_and_arch_picks():
    df = front([(0, 0.8, 1.0), (5, 0.9, 2.0)])
    p = pick_trial(df, 5)
    assert p.name == "trial-5" and p.number == 5 and p.arch == df.iloc[1]["arch"] and p.bound is None
    with pytest.raises(NasInputError, match="--trial 9"):
        pick_trial(df, 9)
    a = pick_arch("stem c8 | ds k3 c8 r1 | head c0")
    assert a.arch == ARCH and a.name.startswith("arch-") and len(a.name) == 13
    assert pick_arch(ARCH, name="mine").name == "mine"
    with pytest.raises(NasInputError, match="bogus"):
        pick_arch("stem c8 | ds k3 c8 bogus | head c0")


def test_picks_frame_and_mark(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    df = front([(0, 0.80, 1.0), (4, 0.93, 8.0)])
    picks = pick_tiers(df) + [pick_arch(ARCH)]
    table = picks_frame(picks)
    assert list(table["name"]) == ["s", "m", "l", picks[-1].name]
    fig, ax = plt.subplots()
    ax.scatter(df["mflops"], df["accuracy"])
    mark_picks(ax, picks)
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == ["L", "S/M"]  # two networks for three tiers: bounds 2, 4, 8, s and m both pick trial 0
    fig.savefig(tmp_path / "p.png")
    plt.close(fig)


def test_load_picks_reads_pick_folders(tmp_path):
    import json

    (tmp_path / "picks" / "s").mkdir(parents=True)
    (tmp_path / "picks" / "s" / "metrics.json").write_text(json.dumps(
        {"name": "s", "arch": ARCH, "number": 3, "search_accuracy": 0.8, "test_accuracy": 0.9,
         "mflops": 1.5, "params": 100, "source": "tier"}))
    (tmp_path / "picks" / "junk").mkdir()
    picks = load_picks(tmp_path)
    assert [p.name for p in picks] == ["s"]
    assert picks[0].accuracy == pytest.approx(0.8) and picks[0].number == 3
    assert load_picks(tmp_path / "nope") == []
    assert isinstance(picks[0], Pick) and not math.isnan(picks[0].mflops)
