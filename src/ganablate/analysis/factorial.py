"""mixed.csv: a linear mixed model over every axis, the exploratory sensitivity analysis beside the contrasts.

Its formula derives from the axes: log(metric) ~ the full factorial of the axes (sum contrasts), a random
intercept per seed (a seed fixes the streams every cell shares) and, for each axis whose levels do not share all
of a seed's streams (design.BREAKS: e.g. D's init per norm), a variance component per seed x that axis. Wald tests
at 6 seeds are liberal (statistics review): the contrasts, not this table, carry the claims.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ganablate.analysis.cells import at_primary, usable
from ganablate.analysis.evidence import register_table
from ganablate.study.plan import Plan

COLUMNS = [
    "term",
    "chi2",
    "df",
    "p",
    "metric",
    "extractor",
    "step",
    "transform",
    "n_runs",
    "n_seeds",
    "var_seed",
    "var_seed_cells",
    "var_residual",
    "icc_seed",
    "converged",
    "formula",
    "note",
]


def formula_of(axes: list[str]) -> str:
    return "y ~ " + " * ".join(f"C({a}, Sum)" for a in axes)


def mixed_table(runs: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    import statsmodels.formula.api as smf

    design, (metric, extractor, step) = plan.design, plan.primary
    data = runs[usable(runs) & at_primary(runs, plan)]
    varied = [a for a in design.axes if data[a.name].nunique() >= 2]
    names = [a.name for a in varied]
    transform = "log" if (data["value"] > 0).all() else "identity"
    formula = formula_of(names) if names else ""
    base = {
        "metric": metric,
        "extractor": extractor,
        "step": step,
        "transform": transform,
        "n_runs": len(data),
        "n_seeds": data["seed"].nunique(),
        "formula": formula,
    }
    counts = data.groupby(names).size() if names else pd.Series(dtype=int)
    full = len(counts) == int(np.prod([data[n].nunique() for n in names])) if names else False
    if not names or not full or (counts < 2).any() or data["seed"].nunique() < 3:
        return pd.DataFrame(
            [
                base
                | {
                    "note": "needs an axis with two levels, every cell of a full design with two "
                    "usable runs, and three seeds"
                }
            ],
            columns=COLUMNS,
        )
    data = data.assign(y=np.log(data["value"]) if transform == "log" else data["value"])
    components = {f"seed_{a.name}": f"0 + C({a.name})" for a in varied if a.breaks}
    model = smf.mixedlm(formula, data, groups="seed", re_formula="1", vc_formula=components or None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and boundary warnings: reported in the table instead
        fit = model.fit(reml=True)
        terms = fit.wald_test_terms(scalar=True).summary_frame().drop(index="Intercept")
    var_seed, var_res = float(fit.cov_re.iloc[0, 0]), float(fit.scale)
    var_cells = float(np.sum(fit.vcomp)) if components else 0.0
    label = {f"C({n}, Sum)": n for n in names}
    return pd.DataFrame(
        {
            "term": [":".join(label[part] for part in t.split(":")) for t in terms.index],
            "chi2": terms["chi2"].to_numpy(float),
            "df": terms["df constraint"].to_numpy(int),
            "p": terms["P>chi2"].to_numpy(float),
        }
    ).assign(
        **base,
        var_seed=var_seed,
        var_seed_cells=var_cells,
        var_residual=var_res,
        icc_seed=var_seed / (var_seed + var_cells + var_res),
        converged=bool(fit.converged),
        note="" if fit.converged else "the REML fit did not converge: read with care",
    )[COLUMNS]


def _note(plan: Plan) -> str:
    return (
        f"Exploratory sensitivity analysis: linear mixed model (REML) of log {plan.metric} at step "
        f"{plan.final_step}, formula from the axes (sum contrasts), random intercept per seed and a variance component "
        f"per seed x axis for axes whose levels do not share a seed's streams; Wald chi2 per term (liberal at few "
        f"seeds)."
    )


register_table(
    "mixed",
    category="diagnostics",
    build=lambda evidence: mixed_table(evidence.runs, evidence.plan),
    note=_note,
)
