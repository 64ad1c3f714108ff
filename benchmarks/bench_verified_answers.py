"""Verified answers (issue 9): verify time and answer latency before and after, side by side.

Usage::

    python benchmarks/bench_verified_answers.py --size small   # 2,000 subjects, ~7k entries
    python benchmarks/bench_verified_answers.py --size large   # 20,000 subjects, ~25k entries

*Before* is the code at commit ``d3a708c`` (main before issue 9), extracted with
``git archive`` into a temporary directory; *after* is this checkout's ``src``. The same worker
(``_verified_answers_worker.py``) runs against each in its own subprocess (``PYTHONPATH`` set to
that version's ``src``, its own ``ROWTRAIL_STATE_DIR``) and builds, with fixed seeds, the same
workspace: a CSV source with a subject per row (``rt.load_csv(..., subject="id")``), an L2
logistic fit recorded in a training run, an exact-influence attributor saved with
``save_attributor``, one logged prediction, and 5,000 subject events through
``ws.ledger.batch()``. Then, in rounds that alternate which version runs first (ABBA, one new
process per version per round, so load drift cancels in the per-round ratio), it times:

* full ``ws.verify()`` on a freshly opened handle;
* ``ws.explain(prediction, top_k=20)`` with proofs, ``rowtrail.training.sample_usage(ws,
  subject=raw_id)`` and ``ws.ledger.proven_entries(subject=ws.pseudonymize(raw_id))``, each as
  the first call in a new process (what a CLI call pays after imports), the first call on a new
  handle in a warm process, and warm (median of repeated calls on one handle after one untimed
  call).

Each figure is the median over rounds; the ratio is the median of the per-round ratios
after ÷ before, with its min and max. Paths more than 1.2x slower are printed as "over budget"
and profiled with cProfile (top functions of both versions); timings never fail the run.
The script checks its own results and exits non-zero if verify fails or covers the wrong
size, explain returns different top-20 rows in the two versions, ``sample_usage`` finds no
(or a different number of) "fit" uses, or ``proven_entries`` misses the subject's events.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

BASELINE = "d3a708c"
BUDGET = 1.2
ROUNDS = {"small": 7, "large": 7}
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKER = HERE / "_verified_answers_worker.py"
FIGURES = [
    ("verify", "verify() on a new handle"),
    ("explain_process", "explain top-20, 1st call, new process"),
    ("explain_handle", "explain top-20, 1st call, new handle"),
    ("explain_warm", "explain top-20, warm"),
    ("usage_process", "sample_usage, 1st call, new process"),
    ("usage_handle", "sample_usage, 1st call, new handle"),
    ("usage_warm", "sample_usage, warm"),
    ("proven_process", "proven_entries, 1st call, new process"),
    ("proven_handle", "proven_entries, 1st call, new handle"),
    ("proven_warm", "proven_entries, warm"),
]


def die(message: str) -> NoReturn:
    print(f"FAILED: {message}", file=sys.stderr)
    raise SystemExit(1)


def extract_baseline(dest: Path) -> Path:
    """``git archive BASELINE src | tar -x``; a clear error if git or the commit is missing."""
    dest.mkdir(parents=True, exist_ok=True)
    git = shutil.which("git")
    if git is None:
        die("git is not on PATH: the baseline is extracted with `git archive`")
    probe = subprocess.run(
        [git, "-C", str(REPO), "rev-parse", "--verify", "--quiet", f"{BASELINE}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        die(
            f"baseline commit {BASELINE} is not in the repository at {REPO} (a shallow clone? "
            "fetch the full history, e.g. `git fetch --unshallow`)"
        )
    archive = subprocess.Popen(
        [git, "-C", str(REPO), "archive", BASELINE, "src"], stdout=subprocess.PIPE
    )
    untar = subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout)
    if archive.stdout is not None:
        archive.stdout.close()
    if archive.wait() != 0 or untar.returncode != 0:
        die(f"`git archive {BASELINE} src | tar -x -C {dest}` failed")
    if not (dest / "src" / "rowtrail" / "__init__.py").exists():
        die(f"the archive of {BASELINE} holds no src/rowtrail")
    return dest / "src"


def describe_tree() -> str:
    """HEAD of this checkout and how many files under src differ from it (the "after" code)."""
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    return f"HEAD {head or '?'}" + (f" + {len(dirty)} uncommitted files in src" if dirty else "")


class Version:
    """One side of the comparison: its source tree, state directory and workspace."""

    def __init__(self, label: str, src: Path, root: Path) -> None:
        self.label = label
        self.src = src
        self.workdir = root / label
        self.workdir.mkdir()
        self.state = root / f"{label}-state"
        self.state.mkdir()

    def run(self, mode: str, size: str, *extra: str) -> dict[str, Any]:
        env = dict(os.environ)
        env.update(
            PYTHONPATH=str(self.src),
            ROWTRAIL_STATE_DIR=str(self.state),
            OMP_NUM_THREADS="1",
            OPENBLAS_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
        )
        env.pop("ROWTRAIL_WORKSPACE", None)
        cmd = [sys.executable, str(WORKER), mode, str(self.workdir), size, str(self.src), *extra]
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if result.returncode != 0:
            die(
                f"{self.label} worker ({mode}) exited {result.returncode}:\n"
                f"{result.stderr.strip()[-3000:]}"
            )
        out: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        return out


def check_answers(before: dict[str, Any], after: dict[str, Any], where: str) -> None:
    if before["top_k"] != after["top_k"]:
        diff = [(b, a) for b, a in zip(before["top_k"], after["top_k"], strict=True) if a != b]
        die(f"explain top-20 differs between versions ({where}); first differences {diff[:3]}")
    if before["n_fit_uses"] != after["n_fit_uses"]:
        die(
            f"sample_usage 'fit' uses differ ({where}): before {before['n_fit_uses']}, "
            f"after {after['n_fit_uses']}"
        )


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(ROUNDS), default="small")
    parser.add_argument("--rounds", type=int, default=None, help="ABBA rounds (default 7)")
    parser.add_argument(
        "--no-profile", action="store_true", help="skip the profile of paths over budget"
    )
    args = parser.parse_args()
    rounds = args.rounds or ROUNDS[args.size]
    started = time.perf_counter()
    load_start = os.getloadavg()
    print(
        f"# bench_verified_answers --size {args.size}  "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cpus, load {load_start[0]:.2f})"
    )
    with tempfile.TemporaryDirectory(prefix="rowtrail-bench-va-") as tmp:
        root = Path(tmp)
        before = Version("before", extract_baseline(root / "baseline"), root)
        after = Version("after", REPO / "src", root)
        tree = describe_tree()
        built = {v.label: v.run("build", args.size) for v in (before, after)}
        for v in (before, after):
            info = built[v.label]
            print(
                f"{v.label:>6} ({BASELINE if v is before else 'working tree, ' + tree}): "
                f"{info['n_rows']:,} subjects, {info['ledger_size']:,} ledger entries, "
                f"built in {info['build_s']:.2f} s (one sample)"
            )
        samples: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
        ratios: dict[str, list[float]] = {key: [] for key, _ in FIGURES}
        loads = [load_start[0]]
        answers: dict[str, Any] = {}
        for r in range(rounds):
            order = (before, after) if r % 2 == 0 else (after, before)
            got = {v.label: v.run("measure", args.size) for v in order}
            loads.append(os.getloadavg()[0])
            check_answers(got["before"]["answers"], got["after"]["answers"], f"round {r + 1}")
            answers = {k: got[k]["answers"] for k in got}
            for key, _ in FIGURES:
                b = got["before"]["timings_s"][key]
                a = got["after"]["timings_s"][key]
                samples["before"].setdefault(key, []).append(b)
                samples["after"].setdefault(key, []).append(a)
                ratios[key].append(a / b)

        print(
            f"\n{rounds} rounds (ABBA, one new process per version per round); ms per call, "
            f"median over rounds; ratio = median of per-round after ÷ before (min-max)"
        )
        print(f"{'figure':<40} {'before ms':>10} {'after ms':>10} {'ratio':>7} {'min-max':>11}")
        figures = {}
        over = []
        for key, label in FIGURES:
            b = statistics.median(samples["before"][key]) * 1e3
            a = statistics.median(samples["after"][key]) * 1e3
            ratio = statistics.median(ratios[key])
            flag = ""
            if ratio > BUDGET:
                flag = f"  over budget (> {BUDGET}x)"
                over.append(key)
            print(
                f"{label:<40} {b:>10.3f} {a:>10.3f} {ratio:>6.2f}x {spread(ratios[key]):>11}{flag}"
            )
            figures[key] = {
                "before_ms": round(b, 4),
                "after_ms": round(a, 4),
                "ratio": round(ratio, 4),
                "ratio_min": round(min(ratios[key]), 4),
                "ratio_max": round(max(ratios[key]), 4),
            }
        print(
            f"\nanswers equal in both versions: top-20 rows {answers['after']['top_k'][:3]}…, "
            f"'fit' uses {answers['after']['n_fit_uses']}; usage kinds before "
            f"{answers['before']['usage_kinds']} / after {answers['after']['usage_kinds']}; "
            f"proofs in explain {answers['before']['n_proofs']} / {answers['after']['n_proofs']}; "
            f"proven entries {len(answers['before']['proven_kinds'])} / "
            f"{len(answers['after']['proven_kinds'])}"
        )
        print(
            f"load average (1 min) over the rounds: {min(loads):.2f}-{max(loads):.2f} "
            f"(start {loads[0]:.2f}, end {loads[-1]:.2f})"
        )
        if over:
            print(f"over budget (> {BUDGET}x slower): {', '.join(over)}")
        else:
            print(f"no answer path is more than {BUDGET}x slower")
        if over and not args.no_profile:
            profiled = {v.label: v.run("measure", args.size, "--profile") for v in (before, after)}
            names = dict.fromkeys(
                key if key == "verify" else key.replace("_handle", "_process") for key in over
            )
            for name in names:
                for label in ("after", "before"):
                    print(f"\ncProfile, {label}, {name} (rowtrail functions by cumulative time):")
                    for line in profiled[label]["profiles"][name]:
                        print(f"  {line}")
    summary = {
        "bench": "verified_answers",
        "size": args.size,
        "baseline": BASELINE,
        "after": tree,
        "rounds": rounds,
        "load": [round(x, 2) for x in loads],
        "figures": figures,
        "over_budget": over,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
