"""analysis/factorial.py: the mixed model, its formula derived from the axes, checked against statsmodels fitted
directly."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.formula.api as smf

from ganablate.analysis import factorial
from ganablate.study.plan import Plan
from tests.synthetic_runs import FEED_NORM_FID, feed_norm_study, runs_table


def test_the_mixed_models_formula_derives_from_the_axes_with_a_seed_component_for_axes_that_reseed():
    runs = runs_table(FEED_NORM_FID)
    table = factorial.mixed_table(runs, Plan.from_config(feed_norm_study())).set_index("term")
    data = runs.assign(y=np.log(runs["value"]))
    fit = smf.mixedlm(
        "y ~ C(feed, Sum) * C(norm, Sum)", data, groups="seed", re_formula="1", vc_formula={"seed_norm": "0 + C(norm)"}
    ).fit(reml=True)
    expected = fit.wald_test_terms(scalar=True).summary_frame()
    assert table.loc["feed:norm", "chi2"] == pytest.approx(expected.loc["C(feed, Sum):C(norm, Sum)", "chi2"])
    assert table.loc["feed", "p"] == pytest.approx(expected.loc["C(feed, Sum)", "P>chi2"])
    assert table["formula"].iloc[0] == "y ~ C(feed, Sum) * C(norm, Sum)"
