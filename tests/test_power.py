"""analysis/power.py: Holm's adjustment and the simulated power of the rules, checked against statsmodels and an
independent simulation, each contrast's spread taken from its own per-seed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from ganablate.analysis import power, tables
from tests.synthetic_runs import runs_table, study_config


def test_holm_adjusted_equals_statsmodels_multipletests():
    p = np.random.default_rng(0).random((20, 5)) ** 3
    np.testing.assert_allclose(power.holm_adjusted(p), [multipletests(row, method="holm")[1] for row in p])


def test_simulated_power_of_the_paired_rule_matches_an_independent_simulation():
    sds, n = [0.2, 0.25, 0.3], 6
    table_power = power.holm_power("paired_t_log", math.log(1.25), sds, [n] * 3, 0.05, 4000, np.random.default_rng(1))
    rng, rejected = np.random.default_rng(99), np.zeros(3)
    for _ in range(1000):
        ps = []
        for sd in sds:
            ref = rng.normal(4.0, 1.0, n)
            ps.append(sps.ttest_rel(ref + math.log(1.25) + rng.normal(0, sd, n), ref).pvalue)
        for k, i in enumerate(np.argsort(ps)):  # reject in increasing p while p < alpha / (m - k)
            if ps[i] >= 0.05 / (3 - k):
                break
            rejected[i] += 1
    np.testing.assert_allclose(table_power, rejected / 1000, atol=0.05)


def test_simulated_tost_power_matches_statsmodels_ttost_paired():
    sd, n, margin = 0.05, 6, 0.1
    simulated = power.tost_power(margin, sd, n, 0.05, 4000, np.random.default_rng(2))
    rng, hits = np.random.default_rng(98), 0
    for _ in range(1000):
        ref = np.exp(rng.normal(4.0, 0.5, n))
        new = ref * np.exp(rng.normal(0, sd, n))
        hits += ttost_paired(new, ref, 1 / (1 + margin), 1 + margin, transform=np.log)[0] < 0.05
    assert simulated == pytest.approx(hits / 1000, abs=0.05)


def test_power_uses_the_spread_of_each_contrasts_own_per_seed_values(tmp_path):
    rng = np.random.default_rng(5)
    values = {
        (f, b): list(np.exp(4 + (0.3 if f == "joint" else 0) + rng.normal(0, 0.1, 6)))
        for f in ("split", "joint")
        for b in ("small", "large")
    }
    config = study_config(
        {"feed": ["split", "joint"], "b": {"sets": "train.batch_size", "levels": {"small": 16, "large": 64}}},
        seeds=6,
        power_simulations=500,
        confirmatory=[
            {"compare": {"feed": "joint"}, "within": {"b": "small"}},
            {"kind": "interaction", "compare": {"feed": "joint"}, "by": {"b": ["small", "large"]}},
        ],
    )
    runs_table(values, axes=["feed", "b"]).to_csv(tmp_path / "runs.csv", index=False)
    runs_table(values, axes=["feed", "b"]).assign(context_gap=0.0, d_acc=0.5).to_csv(tmp_path / "train_logs.csv")
    tables.write_stats(config, tmp_path)
    table = pd.read_csv(tmp_path / "power.csv")
    simple, interaction = (
        table[(table["role"] == "confirmatory") & (table["kind"] == k)].iloc[0] for k in ("simple", "interaction")
    )
    contrasts = pd.read_csv(tmp_path / "contrasts.csv")
    row = contrasts[(contrasts["kind"] == "interaction") & (contrasts["role"] == "confirmatory")].iloc[0]
    log = {k: np.log(v) for k, v in values.items()}
    d = log[("joint", "large")] - log[("split", "large")] - log[("joint", "small")] + log[("split", "small")]
    assert interaction["sd_log"] == pytest.approx(np.std(d, ddof=1)) and row["contrast"] == interaction["contrast"]
    assert simple["sd_log"] == pytest.approx(np.std(log[("joint", "small")] - log[("split", "small")], ddof=1))
