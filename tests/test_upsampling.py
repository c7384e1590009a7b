"""Stratified mixing and the whole upsampling grid on a small slice of the real data."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from medsyn.evaluation.classifier import ClassifierConfig
from medsyn.evaluation.data import NoteSet, default_dev, default_synthetic, default_train, read_notes
from medsyn.evaluation.upsampling import (
    REAL,
    GridPoint,
    allocate,
    default_grid,
    mix,
    plan,
    rare_codes,
    run_grid,
    stratified_draw,
    stratified_share,
    summarise,
)


@pytest.fixture(scope="module")
def train() -> NoteSet:
    return read_notes(default_train())


@pytest.fixture(scope="module")
def gpt4() -> NoteSet:
    return read_notes(default_synthetic()[0])


def test_default_grid_is_the_papers() -> None:
    grid = default_grid()
    assert len(grid) == 13
    assert grid[-1].synthetic_only
    assert {(p.real_share, p.syn_share) for p in grid[:-1]} == {
        (r, s) for r in (0.5, 0.75, 1.0) for s in (0.0, 0.25, 0.5, 1.0)
    }


@pytest.mark.parametrize("share", [0.5, 0.75, 1.0, 0.01])
def test_stratified_share_keeps_every_code(train: NoteSet, share: float) -> None:
    idx = stratified_share(train.codes, share, np.random.default_rng(0))
    kept = Counter(train.codes[i] for i in idx)
    full = Counter(train.codes)
    assert set(kept) == set(full)
    assert all(kept[c] == max(1, round(share * n)) for c, n in full.items())
    assert len(set(idx.tolist())) == idx.size


def test_allocate_is_proportional_capped_and_covers_codes() -> None:
    rng = np.random.default_rng(0)
    avail = {"A": 3, "B": 30, "C": 67}
    assert allocate(avail, 10, rng) == {"A": 1, "B": 3, "C": 6}
    assert allocate(avail, 500, rng) == avail
    small = allocate(avail, 3, rng)
    assert small == {"A": 1, "B": 1, "C": 1}
    assert sum(allocate(avail, 2, rng).values()) == 2


def test_mix_stratifies_synthetic_and_caps_at_set_size(train: NoteSet, gpt4: NoteSet) -> None:
    half = mix(train, gpt4, GridPoint(0.5, 0.5), seed=1)
    assert half.syn_idx.size == round(0.5 * half.real_idx.size)
    assert set(Counter(gpt4.codes[i] for i in half.syn_idx)) == set(gpt4.codes)
    assert set(Counter(train.codes[i] for i in half.real_idx)) == set(train.codes)
    full = mix(train, gpt4, GridPoint(1.0, 1.0), seed=1)
    assert full.syn_idx.size == len(gpt4.notes)  # 4,690 asked, 2,378 available: no note used twice
    by_set = mix(train, gpt4, GridPoint(1.0, 0.25), seed=1, share_of="set")
    assert by_set.syn_idx.size == round(0.25 * len(gpt4.notes))
    only = mix(train, gpt4, GridPoint(0.0, 1.0), seed=1)
    assert only.real_idx.size == 0 and only.syn_idx.size == len(gpt4.notes)


def test_stratified_draw_never_repeats(gpt4: NoteSet) -> None:
    idx = stratified_draw(gpt4.codes, 1000, np.random.default_rng(3))
    assert idx.size == 1000 == len(set(idx.tolist()))


def test_plan_is_reproducible_and_shares_real_only_runs(train: NoteSet, gpt4: NoteSet) -> None:
    other = replace(gpt4, name="other")
    a = plan(train, [gpt4, other], seeds=[0, 1])
    b = plan(train, [gpt4, other], seeds=[0, 1])
    assert [t.real_idx.tolist() for t in a] == [t.real_idx.tolist() for t in b]
    assert [t.fit_seed for t in a] == [t.fit_seed for t in b]
    assert len(a) == 2 * (3 + 2 * 10)
    assert sum(t.set_name == REAL for t in a) == 6
    seed0 = {t.point: t.real_idx.tolist() for t in a if t.seed == 0 and t.set_name == REAL}
    seed1 = {t.point: t.real_idx.tolist() for t in a if t.seed == 1 and t.set_name == REAL}
    assert seed0[GridPoint(0.5, 0.0)] != seed1[GridPoint(0.5, 0.0)]


def test_a_sets_draws_do_not_depend_on_the_other_sets_of_the_run(train: NoteSet, gpt4: NoteSet) -> None:
    other = replace(gpt4, name="other", notes=gpt4.notes[::2])
    alone = plan(train, [gpt4], seeds=[0, 1])
    shared = plan(train, [other, gpt4], seeds=[0, 1])

    def draws(ts: list) -> dict:
        return {
            (t.seed, t.point): (t.real_idx.tolist(), t.syn_idx.tolist(), t.fit_seed)
            for t in ts
            if t.set_name == gpt4.name
        }

    assert draws(alone) == draws(shared)
    # Every set and point with one real share sees the same real notes of a seed: gains are paired.
    real = {(t.seed, t.point.real_share, t.set_name, t.point.syn_share): t.real_idx.tolist() for t in shared}
    for (seed, r, _, _), idx in real.items():
        if r > 0:
            assert idx == real[(seed, r, REAL, 0.0)]


def test_a_control_draws_the_same_samples_and_fit_seed_as_its_set(train: NoteSet, gpt4: NoteSet) -> None:
    from medsyn.evaluation.control import list_twin
    from medsyn.evaluation.data import attach_requested, default_requested, read_requested

    paired, ok = attach_requested(gpt4, read_requested(default_requested()))
    assert ok
    twin = list_twin(paired)
    assert twin is not None and twin.control_of == gpt4.name
    assert twin.codes == paired.codes and all(n.text == ", ".join(n.requested) for n in twin.notes)
    for point in (GridPoint(0.5, 0.5), GridPoint(1.0, 0.25)):
        a, b = mix(train, paired, point, seed=3), mix(train, twin, point, seed=3)
        assert a.syn_idx.tolist() == b.syn_idx.tolist() and a.fit_seed == b.fit_seed
        assert a.real_idx.tolist() == b.real_idx.tolist()
    assert list_twin(gpt4) is None  # no requested symptoms: no control, never an empty one


def test_rare_codes_rule(train: NoteSet) -> None:
    rare = rare_codes(train.codes)
    counts = Counter(train.codes)
    cut = np.quantile(list(counts.values()), 0.25)
    assert rare == {c for c, n in counts.items() if n <= cut}
    assert 0 < len(rare) < len(counts) / 2


def test_whole_grid_on_small_subset(train: NoteSet, gpt4: NoteSet) -> None:
    codes = {c for c, _ in Counter(train.codes).most_common(12)[4:]}
    tr = replace(train, notes=[n for n in train.notes if n.code in codes])
    syn = replace(gpt4, notes=[n for n in gpt4.notes if n.code in codes])
    dev = read_notes(default_dev())
    dv = replace(dev, notes=[n for n in dev.notes if n.code in codes])
    cfg = ClassifierConfig(ngram_range=(3, 4), epochs=2)
    seen: list[str] = []
    results = run_grid(tr, dv, [syn], seeds=[0, 1], config=cfg, on_done=lambda r: seen.append(r.set_name))
    assert len(results) == len(seen) == 2 * 13
    rows = summarise(results, rare_codes(tr.codes))
    assert len(rows) == 13
    base = next(s for s in rows if s.point == GridPoint(1.0, 0.0))
    assert base.gain == (0.0, 0.0)
    assert all(s.seeds == 2 for s in rows)
    assert all(0 <= s.accuracy[0] <= 100 for s in rows)
    # Real notes of 8 codes beat chance by far, whatever the mix.
    assert base.accuracy[0] > 100 / len(codes) + 20
    for r in results:
        want = len(syn.notes) if r.point.synthetic_only else min(len(syn.notes), round(r.point.syn_share * r.n_real))
        assert r.n_syn == want
        assert r.scores.n == len(dv.notes)


def test_the_control_tells_a_list_echo_set_from_notes(train: NoteSet, gpt4: NoteSet) -> None:
    """A planted list-echo set (each note = its requested list) adds exactly nothing over its control, on every
    seed; the authors' GPT-4 notes, whose text differs from their lists, do not."""
    from medsyn.evaluation.control import with_controls
    from medsyn.evaluation.data import default_requested, read_requested

    codes = {c for c, _ in Counter(train.codes).most_common(12)[4:]}
    tr = replace(train, notes=[n for n in train.notes if n.code in codes])
    notes = replace(gpt4, notes=[n for n in gpt4.notes if n.code in codes])
    sets, lines = with_controls([notes], read_requested(default_requested()), source="train_sampled.jsonl")
    paired = sets[0]
    echo = replace(paired, name="echo", notes=[replace(n, text=", ".join(n.requested)) for n in paired.notes])
    sets += with_controls([echo])[0]
    assert [s.name for s in sets] == ["gpt4", "gpt4:lists", "echo", "echo:lists"]
    assert "paired by rank within code" in lines[0]
    dev = read_notes(default_dev())
    dv = replace(dev, notes=[n for n in dev.notes if n.code in codes])
    cfg = ClassifierConfig(ngram_range=(3, 4), epochs=2)
    grid = [GridPoint(1.0, 0.0), GridPoint(1.0, 1.0)]
    results = run_grid(tr, dv, sets, seeds=[0, 1], grid=grid, share_of="set", config=cfg)
    rows = {(s.set_name, s.point): s for s in summarise(results, rare_codes(tr.codes))}
    point = GridPoint(1.0, 1.0)
    assert rows[("echo", point)].text_adds == (0.0, 0.0)
    assert rows[("gpt4", point)].text_adds is not None and rows[("gpt4", point)].text_adds != (0.0, 0.0)
    assert rows[("gpt4:lists", point)].text_adds is None and rows[("gpt4:lists", point)].control_of == "gpt4"


def test_bad_arguments_are_input_errors_naming_the_parameter(train: NoteSet, gpt4: NoteSet, tmp_path) -> None:
    from medsyn.errors import InputError
    from medsyn.evaluation.report import write_quality_report

    rng = np.random.default_rng(0)
    with pytest.raises(InputError, match=r"^share must be in \(0, 1\], got 0"):
        stratified_share(train.codes, 0.0, rng)
    with pytest.raises(InputError, match="is synthetic-only and needs a synthetic set"):
        mix(train, None, GridPoint(0.0, 1.0))
    with pytest.raises(InputError, match="adds synthetic notes and needs a synthetic set"):
        mix(train, None, GridPoint(1.0, 0.5))
    with pytest.raises(InputError, match=f"synthetic_sets need distinct names; {gpt4.name} occurs more than once"):
        run_grid(train, train, [gpt4, gpt4], seeds=[0])
    with pytest.raises(InputError, match="qs is empty"):
        write_quality_report(tmp_path, [], train="t", notes=[])
