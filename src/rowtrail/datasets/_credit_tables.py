"""Column generators for the synthetic Home-Credit-shaped tables (application, bureau, previous).

Every applicant has an unobserved risk score ``z ~ N(0, 1)``. The external scores, the bureau
records (arrears, debt) and the previous applications (refusals) are noisy views of ``z``, and the
default label is drawn from a logistic model of ``z`` and a few observed traits, so a model can
learn the label from the observed columns, and aggregates of the child tables add signal.

Category names, proportions and missing-value rates follow the public Home Credit Default Risk
tables (``application_train``, ``bureau``, ``previous_application``); amounts are lognormal.
All generation is vectorised NumPy driven by the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from rowtrail.datasets._tables import Table

__all__ = [
    "Applicants",
    "ChildSignal",
    "draw_counts",
    "make_applicant_ids",
    "make_application",
    "make_bureau",
    "make_previous_application",
]

FloatArray: TypeAlias = NDArray[np.float64]
IntArray: TypeAlias = NDArray[np.int64]

DAYS_EMPLOYED_ANOMALY = 365243  # Home Credit's placeholder for "not employed" (pensioners)
_DAYS_PER_YEAR = 365.25

_INCOME_TYPES = ("Working", "Commercial associate", "Pensioner", "State servant")
_INCOME_TYPE_P = (0.516, 0.233, 0.180, 0.071)
_EDUCATION = (
    "Secondary / secondary special",
    "Higher education",
    "Incomplete higher",
    "Lower secondary",
    "Academic degree",
)
_EDUCATION_P = (0.7105, 0.2434, 0.0334, 0.0124, 0.0003)
_EDUCATION_RISK = (0.0, -0.35, 0.05, 0.40, -0.60)
_OCCUPATIONS = (
    "Laborers", "Sales staff", "Core staff", "Managers", "Drivers", "High skill tech staff",
    "Accountants", "Medicine staff", "Security staff", "Cooking staff", "Cleaning staff",
    "Private service staff", "Low-skill Laborers", "Waiters/barmen staff", "Secretaries",
    "Realty agents", "HR staff", "IT staff",
)  # fmt: skip
_OCCUPATION_P = (
    0.261, 0.152, 0.131, 0.101, 0.088, 0.054, 0.046, 0.040, 0.032, 0.028, 0.022,
    0.013, 0.010, 0.0064, 0.0062, 0.0035, 0.0027, 0.0025,
)  # fmt: skip
_OCCUPATION_RISK = (
    0.15, 0.05, -0.10, -0.20, 0.20, -0.15, -0.30, -0.05, 0.10, 0.10, 0.05,
    0.0, 0.45, 0.15, -0.05, 0.0, -0.10, -0.10,
)  # fmt: skip
_FAMILY_STATUS = ("Married", "Single / not married", "Civil marriage", "Separated", "Widow")
_FAMILY_STATUS_P = (0.639, 0.148, 0.097, 0.064, 0.052)
_REGION_RATING_P = (0.105, 0.738, 0.157)

_CREDIT_ACTIVE = ("Closed", "Active", "Sold", "Bad debt")
_CREDIT_TYPES = (
    "Consumer credit", "Credit card", "Car loan", "Mortgage", "Microloan",
    "Loan for business development", "Another type of loan",
)  # fmt: skip
_CREDIT_TYPE_P = (0.7296, 0.2344, 0.0165, 0.0107, 0.0073, 0.0012, 0.0003)
_CREDIT_TYPE_LOG_MEDIAN = (11.4, 11.6, 13.3, 14.7, 10.3, 13.1, 12.2)
_CURRENCIES = ("currency 1", "currency 2", "currency 3", "currency 4")
_CURRENCY_P = (0.99918, 0.00071, 0.00010, 0.00001)

_PREV_CONTRACT_TYPES = ("Cash loans", "Consumer loans", "Revolving loans")
_PREV_CONTRACT_TYPE_P = (0.447, 0.437, 0.116)
_CONTRACT_STATUSES = ("Approved", "Canceled", "Refused", "Unused offer")
_REJECT_REASONS = ("HC", "LIMIT", "SCO", "SCOFR", "XNA", "VERIF", "SYSTEM")
_REJECT_REASON_P = (0.59, 0.19, 0.13, 0.04, 0.02, 0.02, 0.01)
_CLIENT_TYPES = ("Repeater", "New", "Refreshed")
_CLIENT_TYPE_P = (0.737, 0.180, 0.083)
_YIELD_GROUPS = ("middle", "high", "low_normal", "low_action")
_YIELD_GROUP_P = (0.37, 0.33, 0.25, 0.05)
_PAYMENT_TERMS = np.array([6.0, 10.0, 12.0, 18.0, 24.0, 30.0, 36.0, 48.0, 60.0])


@dataclass(frozen=True)
class Applicants:
    """The application table without its label, plus the hidden state the other tables need."""

    table: Table
    risk: FloatArray
    base_logit: FloatArray


@dataclass(frozen=True)
class ChildSignal:
    """Per-applicant default-logit contribution of one child table."""

    logit: FloatArray


def _draw(rng: np.random.Generator, p: tuple[float, ...], size: int) -> NDArray[np.intp]:
    """Draw ``size`` category indices with probabilities ``p`` (normalised here)."""
    weights = np.asarray(p, dtype=np.float64)
    cumulative = np.cumsum(weights / weights.sum())
    cumulative[-1] = 1.0
    return np.searchsorted(cumulative, rng.random(size), side="right").astype(np.intp)


def _labels(names: tuple[str, ...], index: NDArray[np.intp]) -> NDArray[np.object_]:
    """Map category indices to an object array of their names."""
    return np.asarray(names, dtype=object)[index]


def _sigmoid(x: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-x))


def _round_to(x: FloatArray, step: float) -> FloatArray:
    """Round to a multiple of ``step``, as lenders quote amounts."""
    return np.rint(x / step) * step


def _with_missing(rng: np.random.Generator, x: FloatArray, rate: float) -> FloatArray:
    """Return a copy of ``x`` with a random ``rate`` share of values set to NaN."""
    return np.where(rng.random(x.size) < rate, np.nan, x)


def draw_counts(rng: np.random.Generator, n: int, *, mean: float, p_zero: float) -> IntArray:
    """Draw child-row counts per applicant: zero-inflated ``1 + NegBin`` with the given mean."""
    extra = mean / (1.0 - p_zero) - 1.0
    dispersion = 1.5
    counts = 1 + rng.negative_binomial(dispersion, dispersion / (dispersion + extra), n)
    return np.where(rng.random(n) < p_zero, 0, counts).astype(np.int64)


def make_applicant_ids(rng: np.random.Generator, n: int) -> NDArray[np.object_]:
    """Draw ``n`` distinct raw subject identifiers shaped like UK National Insurance numbers."""
    letters = "ABCEGHJKLMNPRSTWXYZO"  # 20 prefix letters, as NINOs exclude D F I Q U V
    codes = rng.choice(20 * 20 * 1_000_000 * 4, size=n, replace=False)
    return np.array(
        [
            f"{letters[c // 80_000_000]}{letters[c // 4_000_000 % 20]}"
            f"{c // 4 % 1_000_000:06d}{'ABCD'[c % 4]}"
            for c in codes.tolist()
        ],
        dtype=object,
    )


def _people(rng: np.random.Generator, n: int, table: Table) -> dict[str, Any]:
    """Fill demographic columns; return the traits the loan amounts and label depend on."""
    income_type = _draw(rng, _INCOME_TYPE_P, n)
    pensioner = income_type == 2
    age = np.where(pensioner, 55 + 14 * rng.beta(1.3, 1.6, n), 21 + 43 * rng.beta(1.8, 2.2, n))
    years_employed = np.minimum(rng.exponential(6.0, n), age - 18.5)
    education = _draw(rng, _EDUCATION_P, n)
    occupation = _draw(rng, _OCCUPATION_P, n)
    no_occupation = pensioner | (rng.random(n) < 0.16)
    own_car = rng.random(n) < 0.34
    married = _draw(rng, _FAMILY_STATUS_P, n)
    children = np.minimum(rng.poisson(0.42, n), 6).astype(np.int64)
    table["CODE_GENDER"] = np.where(rng.random(n) < 0.342, "M", "F").astype(object)
    table["FLAG_OWN_CAR"] = np.where(own_car, "Y", "N").astype(object)
    table["FLAG_OWN_REALTY"] = np.where(rng.random(n) < 0.694, "Y", "N").astype(object)
    table["CNT_CHILDREN"] = children
    table["NAME_INCOME_TYPE"] = _labels(_INCOME_TYPES, income_type)
    table["NAME_EDUCATION_TYPE"] = _labels(_EDUCATION, education)
    table["NAME_FAMILY_STATUS"] = _labels(_FAMILY_STATUS, married)
    table["CNT_FAM_MEMBERS"] = (1 + (married <= 2) + children).astype(np.float64)
    table["DAYS_BIRTH"] = -np.rint(age * _DAYS_PER_YEAR).astype(np.int64)
    employed_days = -np.rint(years_employed * _DAYS_PER_YEAR).astype(np.int64)
    table["DAYS_EMPLOYED"] = np.where(pensioner, DAYS_EMPLOYED_ANOMALY, employed_days)
    table["DAYS_ID_PUBLISH"] = -rng.integers(0, np.minimum(age - 14, 20) * 365).astype(np.int64)
    car_age = np.floor(rng.gamma(2.0, 6.0, n))
    table["OWN_CAR_AGE"] = np.where(own_car, car_age, np.nan)
    occupation_names = _labels(_OCCUPATIONS, occupation)
    occupation_names[no_occupation] = None
    table["OCCUPATION_TYPE"] = occupation_names
    occupation_risk = np.where(no_occupation, 0.0, np.asarray(_OCCUPATION_RISK)[occupation])
    return {
        "age": age,
        "pensioner": pensioner,
        "new_job": (years_employed < 1.5) & ~pensioner,
        "education_risk": np.asarray(_EDUCATION_RISK)[education],
        "occupation_risk": occupation_risk,
        "higher_education": education == 1,
    }


def _loans(rng: np.random.Generator, n: int, table: Table, traits: dict[str, Any]) -> FloatArray:
    """Fill income and loan columns; return the credit-to-income ratio."""
    log_income = rng.normal(np.log(147_150.0), 0.5, n) + 0.22 * traits["higher_education"]
    log_income -= 0.3 * traits["pensioner"]
    income = np.maximum(_round_to(np.exp(log_income), 450.0), 25_650.0)
    revolving = rng.random(n) < 0.0952
    goods = np.clip(_round_to(income * rng.lognormal(np.log(3.0), 0.55, n), 4_500.0), 40_500, 4e6)
    limits = np.array([135_000.0, 180_000.0, 225_000.0, 270_000.0, 450_000.0, 675_000.0])
    limit = limits[rng.integers(0, limits.size, n)]
    credit = np.where(revolving, limit, _round_to(goods * rng.uniform(1.0, 1.25, n), 0.5))
    goods = np.where(revolving, np.where(rng.random(n) < 0.03, np.nan, limit), goods)
    months = rng.choice(np.array([12.0, 18.0, 24.0, 36.0, 48.0, 60.0]), n)
    rate = rng.uniform(0.008, 0.02, n)
    annuity = np.where(revolving, credit * 0.05, credit * rate / (1 - (1 + rate) ** -months))
    contract = np.where(revolving, "Revolving loans", "Cash loans")
    table["NAME_CONTRACT_TYPE"] = contract.astype(object)
    table["AMT_INCOME_TOTAL"] = income
    table["AMT_CREDIT"] = credit
    table["AMT_ANNUITY"] = _round_to(annuity, 0.5)
    table["AMT_GOODS_PRICE"] = goods
    return credit / income


def _scores(rng: np.random.Generator, n: int, risk: FloatArray, age: FloatArray) -> Table:
    """External credit scores in (0, 1): noisy, partly missing views of the hidden risk."""
    scores: Table = {}
    shape = ((0.0, 0.022, 0.56), (0.35, 0.0, 0.0021), (0.15, 0.0, 0.198))  # offset, age, missing
    for k, (offset, age_slope, missing) in enumerate(shape, start=1):
        logit = offset - 0.95 * risk + age_slope * (age - 43) + rng.normal(0.0, 0.75, n)
        scores[f"EXT_SOURCE_{k}"] = _with_missing(rng, np.round(_sigmoid(logit), 6), missing)
    return scores


def make_application(rng: np.random.Generator, ids: IntArray) -> Applicants:
    """Generate the application table (without TARGET) for applicants with keys ``ids``."""
    n = ids.size
    risk = rng.standard_normal(n)
    table: Table = {"SK_ID_CURR": ids, "applicant_id": make_applicant_ids(rng, n)}
    traits = _people(rng, n, table)
    credit_ratio = _loans(rng, n, table, traits)
    rating = 1 + _draw(rng, _REGION_RATING_P, n)
    table["REGION_RATING_CLIENT"] = rating.astype(np.int64)
    table.update(_scores(rng, n, risk, traits["age"]))
    base_logit = (
        1.25 * risk
        + 0.35 * (rating - 2)
        + 0.30 * (table["CODE_GENDER"] == "M")
        - 0.02 * (traits["age"] - 43)
        + traits["education_risk"]
        + traits["occupation_risk"]
        + 0.30 * traits["new_job"]
        - 0.25 * traits["pensioner"]
        + 0.08 * np.minimum(credit_ratio, 8.0)
    )
    return Applicants(table=table, risk=risk, base_logit=base_logit.astype(np.float64))


def _bureau_amounts(
    rng: np.random.Generator, ctype: NDArray[np.intp], active: NDArray[np.bool_], risk: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Return each bureau credit's amount and its outstanding debt (zero once closed)."""
    m = ctype.size
    log_median = np.asarray(_CREDIT_TYPE_LOG_MEDIAN)[ctype]
    amount = np.round(np.exp(log_median + rng.normal(0.0, 0.85, m)), 2).astype(np.float64)
    share = _sigmoid(0.4 * risk + rng.normal(-0.3, 1.0, m))
    debt = np.where(active, np.round(amount * share, 2), 0.0)
    return amount, debt


def make_bureau(
    rng: np.random.Generator, owner: NDArray[np.intp], curr_ids: IntArray, risk: FloatArray
) -> tuple[Table, ChildSignal]:
    """Generate bureau rows, one per ``owner`` entry (an applicant index), in shuffled order."""
    m, risk_o = owner.size, risk[owner]
    days_credit = -np.ceil(2922 * rng.beta(1.0, 1.6, m)).astype(np.int64)
    ctype = _draw(rng, _CREDIT_TYPE_P, m)
    duration = rng.integers(90, 1830, m) + 1500 * (ctype == 1)
    end = days_credit + duration
    p_active = np.where(end > 0, 0.6, _sigmoid(-2.6 + 0.8 * risk_o))
    active = rng.random(m) < p_active
    state = np.where(active, 1, np.where(rng.random(m) < 0.006, 2, 0))
    state = np.where(~active & (risk_o > 2.3) & (rng.random(m) < 0.05), 3, state)
    overdue = active & (rng.random(m) < _sigmoid(-5.0 + 1.3 * risk_o))
    days_overdue = np.where(overdue, rng.geometric(1 / 40, m), 0).astype(np.int64)
    fact = np.clip(days_credit + np.rint(duration * rng.uniform(0.4, 1.0, m)), days_credit, -1)
    amount, debt = _bureau_amounts(rng, ctype, active, risk_o)
    has_max = rng.random(m) < 0.35
    arrears_share = rng.uniform(0.01, 0.2, m)
    max_overdue = np.where(rng.random(m) < _sigmoid(-2.5 + 0.9 * risk_o), 1.0, 0.0)
    table: Table = {
        "SK_ID_CURR": curr_ids[owner],
        "SK_ID_BUREAU": 5_000_000 + np.cumsum(1 + rng.poisson(0.5, m)),
        "CREDIT_ACTIVE": _labels(_CREDIT_ACTIVE, state),
        "CREDIT_CURRENCY": _labels(_CURRENCIES, _draw(rng, _CURRENCY_P, m)),
        "DAYS_CREDIT": days_credit,
        "CREDIT_DAY_OVERDUE": days_overdue,
        "DAYS_CREDIT_ENDDATE": _with_missing(rng, end.astype(np.float64), 0.06),
        "DAYS_ENDDATE_FACT": np.where(active, np.nan, fact),
        "AMT_CREDIT_MAX_OVERDUE": np.where(
            has_max, np.round(max_overdue * rng.lognormal(np.log(5_000.0), 1.2, m), 3), np.nan
        ),
        "CNT_CREDIT_PROLONG": rng.poisson(0.006, m).astype(np.int64),
        "AMT_CREDIT_SUM": amount,
        "AMT_CREDIT_SUM_DEBT": _with_missing(rng, debt, 0.15),
        "AMT_CREDIT_SUM_OVERDUE": np.where(overdue, np.round(debt * arrears_share, 2), 0.0),
        "CREDIT_TYPE": _labels(_CREDIT_TYPES, ctype),
        "DAYS_CREDIT_UPDATE": np.where(
            active, -rng.integers(0, 45, m), np.minimum(fact + rng.integers(0, 60, m), 0)
        ).astype(np.int64),
    }
    return table, _bureau_signal(owner, overdue, active, risk.size)


def _bureau_signal(
    owner: NDArray[np.intp], overdue: NDArray[np.bool_], active: NDArray[np.bool_], n: int
) -> ChildSignal:
    """Default-logit contribution of arrears and of many open credits at the bureau."""
    n_overdue = np.bincount(owner, weights=overdue, minlength=n)
    n_active = np.bincount(owner, weights=active, minlength=n)
    logit = 0.5 * (n_overdue > 0) + 0.06 * np.minimum(n_active, 10)
    return ChildSignal(logit=logit.astype(np.float64))


def _previous_amounts(
    rng: np.random.Generator, ctype: NDArray[np.intp], canceled: NDArray[np.bool_]
) -> tuple[FloatArray, FloatArray]:
    """Return the applied-for and granted amounts of previous applications."""
    k = ctype.size
    cash = _round_to(rng.lognormal(np.log(225_000.0), 0.8, k), 4_500.0)
    consumer = _round_to(rng.lognormal(np.log(70_000.0), 0.9, k), 0.5)
    limits = np.array([0.0, 45_000.0, 67_500.0, 90_000.0, 135_000.0, 180_000.0, 225_000.0])
    revolving = limits[rng.integers(0, limits.size, k)]
    applied = np.choose(ctype, [cash, consumer, revolving])
    granted = _round_to(applied * rng.lognormal(0.03, 0.12, k), 0.5)
    zeroed = canceled & (rng.random(k) < 0.8)  # most cancelled applications carry no amounts
    return np.where(zeroed, 0.0, applied), np.where(zeroed, 0.0, granted)


def make_previous_application(
    rng: np.random.Generator, owner: NDArray[np.intp], curr_ids: IntArray, risk: FloatArray
) -> tuple[Table, ChildSignal]:
    """Generate previous applications, one per ``owner`` entry, in shuffled order."""
    k, risk_o = owner.size, risk[owner]
    ctype = _draw(rng, _PREV_CONTRACT_TYPE_P, k)
    refused = rng.random(k) < _sigmoid(-1.9 + 0.9 * risk_o)
    other = rng.random(k)
    status = np.where(refused, 2, np.where(other < 0.23, 1, np.where(other < 0.25, 3, 0)))
    canceled = status == 1
    applied, granted = _previous_amounts(rng, ctype, canceled)
    no_schedule = (granted == 0.0) | (ctype == 2)
    terms = np.where(ctype == 2, 0.0, rng.choice(_PAYMENT_TERMS, k))
    rate = rng.uniform(0.008, 0.03, k)
    annuity = _round_to(granted * rate / (1 - (1 + rate) ** -np.maximum(terms, 1.0)), 0.005)
    down = np.where(rng.random(k) < 0.7, 0.0, _round_to(applied * rng.beta(1.0, 8.0, k), 0.5))
    reason = np.where(status == 3, "CLIENT", "XAP").astype(object)
    reason[refused] = _labels(_REJECT_REASONS, _draw(rng, _REJECT_REASON_P, int(refused.sum())))
    yield_group = _labels(_YIELD_GROUPS, _draw(rng, _YIELD_GROUP_P, k))
    table: Table = {
        "SK_ID_PREV": 1_000_000 + np.cumsum(1 + rng.poisson(1.0, k)),
        "SK_ID_CURR": curr_ids[owner],
        "NAME_CONTRACT_TYPE": _labels(_PREV_CONTRACT_TYPES, ctype),
        "AMT_ANNUITY": np.where(no_schedule & (ctype != 2), np.nan, annuity),
        "AMT_APPLICATION": applied,
        "AMT_CREDIT": granted,
        "AMT_DOWN_PAYMENT": np.where(ctype == 1, down, np.nan),
        "AMT_GOODS_PRICE": np.where((ctype == 2) | (applied == 0.0), np.nan, applied),
        "NAME_CONTRACT_STATUS": _labels(_CONTRACT_STATUSES, status),
        "DAYS_DECISION": -np.ceil(2922 * rng.beta(0.9, 2.0, k)).astype(np.int64),
        "CODE_REJECT_REASON": reason,
        "NAME_CLIENT_TYPE": _labels(_CLIENT_TYPES, _draw(rng, _CLIENT_TYPE_P, k)),
        "NAME_YIELD_GROUP": np.where((status == 0) & (ctype != 2), yield_group, "XNA"),
        "CNT_PAYMENT": np.where(no_schedule & (ctype != 2), np.nan, terms),
    }
    n_refused = np.bincount(owner, weights=refused, minlength=risk.size)
    return table, ChildSignal(logit=(0.15 * np.minimum(n_refused, 6)).astype(np.float64))
