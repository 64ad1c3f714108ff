"""What an attribution score measures, in words: its unit, its sign, and what totals sum.

Every scorer returns ``score(t, i)`` linear in the query's *output-margin* gradient (see
:mod:`rowtrail.attribution._scorers`): the margin is the logit (log-odds) of the explained
class for classifiers, the raw output for regression. For exact influence on an L2-regularised
convex model the score is, to one Newton step of leave-one-out (Koh & Liang 2017, §2.2),
``margin(model trained with row i) - margin(model refit without row i)``; TRAK estimates the
same quantity for an ensemble (Park et al. 2023, §3); TracInCP sums the first-order change the
SGD steps on row ``i`` made to the margin (Pruthi et al. 2020, eq. 4); gradient similarity is
a unitless cosine that only ranks rows.
"""

from __future__ import annotations

__all__ = ["SIGN_CONVENTION", "TABLE_MEASURE", "score_unit"]

_MARGIN = (
    "the decision margin (log-odds of the explained class; the predicted value for regression)"
)

_UNITS = {
    "exact_influence": (
        f"change in {_MARGIN} when the training row is removed and the model refit: score = "
        "margin with the row - margin without it (one Newton step of leave-one-out)"
    ),
    "trak": (
        f"estimated change in {_MARGIN}, averaged over the model ensemble, when the training "
        "row is removed (TRAK after-kernel estimate)"
    ),
    "tracin": (
        f"first-order change in {_MARGIN} made by the gradient steps taken on the training row "
        "(TracInCP, summed over checkpoints)"
    ),
    "grad_sim": (
        "cosine similarity of the decision's and the training row's gradients (unitless, "
        "between -1 and 1); it ranks rows but does not measure an effect on the decision"
    ),
}

SIGN_CONVENTION = (
    "positive = the training row supports the decision (removing it would lower the margin "
    "of the explained class); negative = it opposes the decision (removing it would raise it)"
)

TABLE_MEASURE = (
    "sum of the scores of the training samples that drew at least one row from the table; a "
    "sample built from several tables counts in full for each, so these sums overlap, do not "
    "add up across tables, and are not the effect of removing the table's rows"
)


def score_unit(method: str) -> str:
    """Return what a score of ``method`` measures, in words (``"unknown"`` methods say so).

    Examples
    --------
    >>> score_unit("grad_sim").startswith("cosine")
    True
    """
    return _UNITS.get(method, f"scores of method {method!r}; their unit is not documented")
