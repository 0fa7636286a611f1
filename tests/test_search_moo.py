"""Pure-function tests of the search's multi-objective maths and scheduler decisions (no Ray started)."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from nas.moo import (
    crowding_distances,
    hv_contributions,
    hypervolume_2d,
    nondominated_ranks,
    pareto_mask,
    promotion_order,
    promotion_quota,
    rung_epochs,
    should_promote,
)

ACC_COST = ("max", "min")


def brute_ranks(points, senses):
    """Reference: peel fronts by brute force."""
    def dom(a, b):
        a2 = [(-x if s == "max" else x) for x, s in zip(a, senses)]
        b2 = [(-x if s == "max" else x) for x, s in zip(b, senses)]
        return all(x <= y for x, y in zip(a2, b2)) and any(x < y for x, y in zip(a2, b2))

    left = set(range(len(points)))
    ranks = [None] * len(points)
    r = 0
    while left:
        front = {i for i in left if not any(dom(points[j], points[i]) for j in left if j != i)}
        for i in front:
            ranks[i] = r
        left -= front
        r += 1
    return ranks


def test_nondominated_ranks_small_example():
    # (accuracy up, MFLOPs down)
    pts = [(0.90, 10.0), (0.80, 5.0), (0.85, 12.0), (0.70, 5.0), (0.90, 10.0), (0.95, 30.0)]
    assert nondominated_ranks(pts, ACC_COST) == [0, 0, 1, 1, 0, 0]


@pytest.mark.parametrize("seed", range(5))
def test_nondominated_ranks_match_brute_force(seed):
    rng = random.Random(seed)
    pts = [(rng.choice([0.5, 0.6, 0.7, 0.8]), rng.choice([1, 2, 3, 5, 8])) for _ in range(40)]
    assert nondominated_ranks(pts, ACC_COST) == brute_ranks(pts, ACC_COST)


def test_nan_points_rank_last_and_never_on_front_or_promoted():
    pts = [(0.5, 10.0), (math.nan, 0.1), (0.9, math.nan)]
    ranks = nondominated_ranks(pts, ACC_COST)
    assert ranks[0] == 0 and ranks[1] > 0 and ranks[2] > 0
    assert pareto_mask(pts, ACC_COST) == [True, False, False]
    assert not should_promote([(math.nan, 0.1)], ACC_COST, 0, 3)
    # a NaN point does not take the only slot from a real one
    assert promotion_order([(math.nan, 0.1), (0.3, 5.0)], ACC_COST)[0] == 1


def test_crowding_distance_boundaries_infinite_and_middle_normalised():
    pts = [(0.9, 10.0), (0.8, 5.0), (0.7, 1.0)]
    d = crowding_distances(pts, ACC_COST)
    assert d[0] == math.inf and d[2] == math.inf
    assert d[1] == pytest.approx((0.9 - 0.7) / 0.2 + (10 - 1) / 9)
    assert crowding_distances(pts[:2], ACC_COST) == [math.inf, math.inf]


def test_hypervolume_2d_known_area():
    pts = [(0.9, 10.0), (0.8, 5.0), (0.5, 20.0)]  # the last is dominated
    # reference accuracy 0, cost 20: area = 0.9*(20-10) + 0.8*(10-5)
    assert hypervolume_2d(pts, ACC_COST, (0.0, 20.0)) == pytest.approx(0.9 * 10 + 0.8 * 5)
    assert hypervolume_2d([], ACC_COST, (0.0, 20.0)) == 0.0
    assert hypervolume_2d([(0.9, 25.0)], ACC_COST, (0.0, 20.0)) == 0.0


def test_hv_contributions_sum_to_leave_one_out_differences():
    pts = [(0.9, 10.0), (0.8, 5.0), (0.6, 2.0)]
    ref = (0.0, 20.0)
    total = hypervolume_2d(pts, ACC_COST, ref)
    contrib = hv_contributions(pts, ACC_COST, ref)
    for i in range(3):
        rest = pts[:i] + pts[i + 1 :]
        assert contrib[i] == pytest.approx(total - hypervolume_2d(rest, ACC_COST, ref))
    assert hv_contributions([(0.9, 1.0), (0.9, 1.0)], ACC_COST, ref) == [0.0, 0.0]


def test_promotion_quota_is_top_one_over_eta_at_least_one():
    assert [promotion_quota(n, 3) for n in range(0, 10)] == [0, 1, 1, 1, 1, 1, 2, 2, 2, 3]
    assert promotion_quota(4, 2) == 2
    assert promotion_quota(9, 3) == 3  # exact division despite float eta


def test_promotion_order_rank_first_then_hypervolume_then_arrival():
    pts = [(0.60, 4.0), (0.90, 10.0), (0.50, 20.0), (0.80, 2.0)]
    # front: (0.90, 10) and (0.80, 2); (0.60, 4) is dominated by (0.80, 2); (0.50, 20) by all
    order = promotion_order(pts, ACC_COST)
    assert set(order[:2]) == {1, 3}
    assert order[2:] == [0, 2]
    # identical points: arrival order decides
    assert promotion_order([(0.5, 1.0), (0.5, 1.0)], ACC_COST) == [0, 1]


def test_first_arrival_continues_dominated_newcomer_stops():
    assert should_promote([(0.5, 10.0)], ACC_COST, 0, 3)
    pts = [(0.9, 5.0), (0.5, 10.0)]
    assert should_promote(pts, ACC_COST, 0, 3)
    assert not should_promote(pts, ACC_COST, 1, 3)


def test_non_dominated_newcomer_can_be_promoted_with_low_accuracy():
    # a much cheaper model is on the front even with lower accuracy
    pts = [(0.9, 10.0), (0.85, 12.0), (0.7, 11.0), (0.6, 1.0), (0.65, 13.0), (0.5, 14.0)]
    assert promotion_quota(len(pts), 3) == 2
    assert should_promote(pts, ACC_COST, 3, 3)
    assert not should_promote(pts, ACC_COST, 1, 3)


def test_exactly_quota_trials_are_promotable_in_a_full_rung():
    rng = random.Random(0)
    pts = [(rng.random(), rng.uniform(1, 30)) for _ in range(27)]
    promoted = [i for i in range(len(pts)) if should_promote(pts, ACC_COST, i, 3)]
    assert len(promoted) == 9
    # and no promoted trial is dominated by a non-promoted one of a better rank
    ranks = nondominated_ranks(pts, ACC_COST)
    assert max(ranks[i] for i in promoted) <= min(ranks[i] for i in range(27) if i not in promoted)


def test_budgeted_rung_keeps_to_its_quota_but_always_lets_its_front_continue():
    from nas.search.scheduler import RungBook

    arrivals = [
        (0.90, 1.0),  # first: on the front -> continues (1 continued)
        (0.80, 2.0),  # dominated, 2nd of 2, quota 1 -> stops
        (0.85, 2.0),  # 2nd of 3, quota 1 -> stops
        (0.88, 2.0),  # 2nd of 4, quota 2, 1 continued -> continues
        (0.89, 2.0),  # 2nd of 5, quota 2, but 2 continued already -> stops (plain ASHA: continues)
        (0.95, 5.0),  # on the front -> continues
        (0.96, 6.0),  # on the front, quota 3 used up -> continues anyway
    ]
    budgeted, plain = RungBook([1], ACC_COST, 2), RungBook([1], ACC_COST, 2, budgeted=False)
    got = [budgeted.record(1, k, p) for k, p in enumerate(arrivals)]
    assert got == [True, False, False, True, False, True, True]
    assert [plain.record(1, k, p) for k, p in enumerate(arrivals)][4] is True
    assert budgeted.promoted(1) == 4
    _, why = budgeted.decide(1, 4, arrivals[4])  # idempotent, and says why
    assert "2 continued already" in why


def test_budgeted_promotion_never_exceeds_quota_plus_front_arrivals():
    rng = random.Random(5)
    for eta in (2, 3, 4):
        points, promoted, front_arrivals = [], 0, 0
        for i in range(60):
            # an "improving sampler": later points are better on average
            points.append((min(1.0, rng.random() * 0.5 + i / 120), rng.uniform(1, 30)))
            on_front = nondominated_ranks(points, ACC_COST)[i] == 0
            ok = should_promote(points, ACC_COST, i, eta, promoted)
            assert ok or not on_front
            front_arrivals += on_front
            promoted += ok
            assert promoted <= promotion_quota(len(points), eta) + front_arrivals
        plain = sum(should_promote(points[: i + 1], ACC_COST, i, eta) for i in range(60))
        assert promoted < plain  # the cap bites with an improving sampler


def test_rung_epochs():
    assert rung_epochs(1, 9, 3) == [1, 3]
    assert rung_epochs(1, 10, 3) == [1, 3, 9]
    assert rung_epochs(1, 4, 2) == [1, 2]
    assert rung_epochs(2, 2, 3) == []
    assert rung_epochs(1, 1, 3) == []
    with pytest.raises(ValueError):
        rung_epochs(1, 9, 1)


def test_pareto_mask_keeps_duplicates_of_front_points():
    pts = [(0.9, 1.0), (0.9, 1.0), (0.8, 2.0)]
    assert pareto_mask(pts, ACC_COST) == [True, True, False]


def test_pareto_mask_matches_definition_exhaustively():
    grid = list(itertools.product([0.5, 0.7, 0.9], [1.0, 3.0, 9.0]))
    rng = random.Random(3)
    for _ in range(20):
        pts = rng.sample(grid, 5)
        mask = pareto_mask(pts, ACC_COST)
        for p, on in zip(pts, mask):
            dominated = any(q[0] >= p[0] and q[1] <= p[1] and q != p for q in pts)
            assert on == (not dominated)


# ---------------------------------------------------------------- scheduler book (pure, no Ray)


def test_rung_book_decisions_idempotent_and_log_cost():
    from nas.search.scheduler import RungBook

    book = RungBook([1, 3], ("max", "min"), 3)
    assert book.record(1, 0, (0.5, 10.0))
    assert not book.record(1, 1, (0.4, 20.0))  # dominated
    assert not book.record(1, 1, (0.99, 1.0))  # idempotent: the first record stands
    assert book.records[1][0] == (0.5, 1.0)  # cost kept as log10
    promote, why = book.decide(1, 2, (0.3, 1.0))
    # the cheapest point is on the rung's front: it continues although the quota (1 of 3) is used up
    assert promote is True
    assert "placed" in why and "of 3" in why


def test_rung_book_preload_from_curves():
    from nas.search.scheduler import RungBook

    book = RungBook([1, 3], ("max", "min"), 3)
    book.preload(7, [0.2, 0.3, 0.4, 0.5], 8.0, promoted_to=4)
    book.preload(8, [0.1], 2.0, promoted_to=1)
    assert set(book.records[1]) == {7, 8}
    assert set(book.records[3]) == {7}
    assert book.records[3][7][0] == 0.4
    # the decisions come back too: 7 went on past both rungs, 8 stopped at rung 1
    assert book.decisions[1] == {7: True, 8: False} and book.decisions[3] == {7: True}
    assert book.promoted(1) == 1


def test_status_text():
    from nas.search.progress import format_duration, status_text

    stats = {"done": 5, "budget": 20, "running": 2, "pruned": 3, "failed": 1, "rejected": 0, "front": 2,
             "best": 0.9123, "started": 100.0, "session_done": 5}
    line = status_text(stats, 160.0)
    assert line.startswith("[nas] 5/20 trained | 2 running | 3 pruned | 1 failed | front 2 | best 91.2%")
    assert "1:00 elapsed" in line and "ETA 3:00" in line
    assert format_duration(3725) == "1:02:05"
