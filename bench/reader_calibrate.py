"""Calibrate when the trained reader refuses, on every dev set together, cross-validated by article or document.

    python bench/reader_calibrate.py record --home H --adapter DIR --out R/     # the dev sets' details, nothing refused
    python bench/reader_calibrate.py fit R/ [R2/ ...] [--write DIR/reader_card.json]  # the rule, CV figures, the card
    python bench/reader_calibrate.py fit-spans R/ [--write DIR/reader_card.json]      # the reading weights, CV figures

`record` runs the evals with the adapter's decision switched off (a copy of the adapter whose card says never
refuse, and `answer.min_relevance` 0), so every question is read and its features are written:
- squad dev (272 questions) asked with their article (answerable) and with it hidden (unanswerable);
- squad2_dev (228 answerable, 217 adversarial unanswerable);
- papers_dev (60 answerable, 12 unanswerable) through `bench/papers_eval.py`;
- genai_dev (15 open questions, all answerable).

`fit` chooses the rule the answer service applies (`AnswerService._read` and `_min_relevance`): refuse when the
relevance is below `min_relevance`, or when log p(no answer) - log p(best span) - relevance_weight * logit(relevance)
exceeds `margin` (not for a question answered by an explanation: only the gate refuses it). The grid point kept
maximises the mean over the four sets of the SQuAD-2.0-style score (an answerable question scores its reply's
containing the gold answer, papers: and citing the right file, genai: 1, when not refused; an unanswerable one
scores 1 when refused), among the rules that refuse at most 10 % of any set's
answerable questions. Every figure printed is leave-one-group-out: each article
(squad), paragraph (squad2_dev, one article), paper (papers_dev) or question (genai) is scored by the rule fitted on
all the other groups. `--write` stores the rule fitted on everything, with this provenance, in the card.
`fit-spans` chooses the weights of `span_features` (rag_app/services/extractive.py) by which the service picks its
answer among the reader's likeliest spans: a softmax over each answerable question's recorded candidates, fitted to
maximise the mean over squad, squad2_dev and papers_dev of the expected short-answer F1, with a ridge; figures
leave-one-group-out.
Dev only: the held-out sets are never read.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"
SETS = ("squad", "squad2_dev", "papers_dev", "genai_dev")
MARGINS = np.arange(-12.0, 12.01, 0.25)
WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)
GATES = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3)


# -- record -----------------------------------------------------------------------------------------------------------
def record(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    adapter = Path(args.adapter).resolve()
    open_adapter = out / "adapter-no-refusal"
    shutil.rmtree(open_adapter, ignore_errors=True)
    shutil.copytree(adapter, open_adapter)
    card = json.loads((open_adapter / "reader_card.json").read_text())
    card["decision"] = {"margin": 1e9, "min_relevance": 0.0}
    (open_adapter / "reader_card.json").write_text(json.dumps(card))
    env = {**os.environ, "RAG_LLM__ADAPTER": str(open_adapter), "RAG_ANSWER__MIN_RELEVANCE": "0", "RAG_HOME": args.home}
    rag = [sys.executable, "-m", "rag_app"]
    runs = {
        "squad": rag + ["eval", "answers", "--corpus", str(EVAL / "squad"), "--unanswerable", "--json",
                        "--details", str(out / "squad.jsonl")],
        "squad2_dev": rag + ["eval", "answers", "--corpus", str(EVAL / "squad2_dev"), "--json",
                             "--details", str(out / "squad2_dev.jsonl")],
        "papers_dev": [sys.executable, str(ROOT / "bench" / "papers_eval.py"), "--home", args.home, "--json",
                       "--details", str(out / "papers_dev.jsonl")],
        "genai_dev": rag + ["eval", "open", "--queries", str(EVAL / "genai_dev" / "questions.jsonl"), "--json",
                            "--details", str(out / "genai_dev.jsonl")],
    }
    for name in args.sets or SETS:
        print(f"recording {name}", file=sys.stderr, flush=True)
        result = subprocess.run(runs[name], env=env, cwd=ROOT, check=True, capture_output=True, text=True)
        (out / f"{name}.summary.json").write_text(result.stdout)
    # The rule reads retrieval's features, so it holds for the chunks per question it was recorded with.
    sys.path.insert(0, str(ROOT))
    from rag_app.settings import Settings

    (out / "recorded_with.json").write_text(json.dumps({"retrieve_k": Settings().retrieve.k}))


def recorded_k(folders) -> int:
    """The `retrieve.k` every record folder was recorded with (they must agree)."""
    ks = {json.loads((Path(f) / "recorded_with.json").read_text())["retrieve_k"] for f in folders}
    if len(ks) != 1:
        raise SystemExit(f"the record folders were recorded with different retrieve.k: {sorted(ks)}")
    return ks.pop()


# -- the rows ---------------------------------------------------------------------------------------------------------
def _groups(name: str) -> dict[str, str]:
    """Question id -> its group (the article, paragraph or paper)."""
    if name == "squad":
        titles = {}
        for line in open(EVAL / "squad" / "corpus.jsonl", encoding="utf-8"):
            row = json.loads(line)
            titles[row["_id"]] = row.get("title") or row["_id"]
        return {q["_id"]: titles.get(q.get("corpus_id"), q["_id"])
                for q in map(json.loads, open(EVAL / "squad" / "queries_dev.jsonl", encoding="utf-8"))}
    if name == "squad2_dev":
        return {q["_id"]: q.get("corpus_id") or q["_id"]
                for q in map(json.loads, open(EVAL / "squad2_dev" / "queries_dev.jsonl", encoding="utf-8"))}
    return {}


def load_rows(folder: Path) -> list[dict]:
    """One row per question: set, group, answerable, the score if not refused, and the features the rule reads."""
    rows = []
    for name in SETS:
        path = folder / f"{name}.jsonl"
        if not path.is_file():
            continue
        groups = _groups(name)
        for raw in map(json.loads, open(path, encoding="utf-8")):
            span, relevance = raw.get("span") or {}, raw.get("relevance") or {}
            if name in ("squad", "squad2_dev"):
                answerable = raw["pass"] == "answerable"
                score = float(raw["contained"]) if answerable else 1.0
                group = groups.get(raw["id"], raw["id"])
            elif name == "papers_dev":
                answerable = raw["answerable"]
                score = float(raw["contained_cited"]) if answerable else 1.0
                group = raw.get("file") or raw["id"]
            else:
                answerable, score, group = True, 1.0, raw["id"]
            margin = span.get("abstain")
            # An explained reply does not rest on the span: the reader's no-answer does not refuse it
            # (`AnswerService._extractive`), only the gate does.
            explained = raw.get("form") == "explain"
            rows.append({"set": name, "group": f"{name}:{group}", "answerable": answerable, "score": score,
                         "f1": float(raw.get("f1") or 0.0),
                         # nothing read, or an explanation: the margin never refuses
                         "margin": float(margin) if margin is not None and not explained else -99.0,
                         "relevance": float(relevance.get("score") or 0.0),
                         # recorded with the rule off, a refusal is the service's own: nothing read, or a span
                         # that answers nothing
                         "refused_anyway": bool(raw.get("refused"))})
    return rows


# -- the rule ---------------------------------------------------------------------------------------------------------
def refused(rows_margin, rows_logit, rows_rel, margin, weight, gate):
    return (rows_rel < gate) | (rows_margin - weight * rows_logit > margin)


#: The most answerable questions a rule may refuse in any one set (`fit --cap`): a refusal of a question the reply
#: would have missed costs nothing in the score, so without this cap the fit refuses whatever retrieval misses. The
#: issue's target is 10 %; fitted at 10 %, the rule refused 11.7 % of papers_dev's answerable questions in
#: cross-validation (stop 36), so the fit keeps a margin below it.
MAX_ANSWERABLE_REFUSED = 0.075


def values(arrays, mask, weight, gate, cap: float = MAX_ANSWERABLE_REFUSED) -> np.ndarray:
    """For every margin in MARGINS, the mean over sets of the SQuAD-2.0-style score of the rows in `mask`; -1 where
    a set's answerable questions are refused more often than `cap`."""
    m, lg, rel, ans, score, sets, anyway = (a[mask] for a in arrays)
    # rows × margins
    ref = refused(m[:, None], lg[:, None], rel[:, None], MARGINS[None, :], weight, gate) | anyway[:, None]
    got = np.where(ans[:, None], score[:, None] * ~ref, ref)
    total, allowed = np.zeros(len(MARGINS)), np.ones(len(MARGINS), dtype=bool)
    present = np.unique(sets)
    for name in present:
        rows = sets == name
        if (rows & ans).any():
            allowed &= ref[rows & ans].mean(axis=0) <= cap
        total += got[rows].mean(axis=0)
    return np.where(allowed, total / len(present), -1.0)


def best_rule(arrays, mask, cap: float = MAX_ANSWERABLE_REFUSED):
    """(margin, relevance_weight, min_relevance) and its value; among equals the first in grid order."""
    best, best_value = None, -1.0
    for weight, gate in itertools.product(WEIGHTS, GATES):
        scores = values(arrays, mask, weight, gate, cap)
        i = int(np.flatnonzero(scores >= scores.max() - 1e-12)[0])  # the smallest margin among equals
        if scores[i] > best_value + 1e-12:
            best, best_value = (float(MARGINS[i]), weight, gate), float(scores[i])
    return best, best_value


def rule_refuses(arrays, index, rule) -> np.ndarray:
    """Which rows of `index` the rule (margin, relevance_weight, min_relevance) refuses."""
    m, lg, rel, _ans, _score, _sets, anyway = (a[index] for a in arrays)
    return refused(m, lg, rel, *rule) | anyway


def as_arrays(rows):
    rel = np.array([r["relevance"] for r in rows])
    clipped = np.clip(rel, 1e-6, 1 - 1e-6)
    return (np.array([r["margin"] for r in rows]), np.log(clipped / (1 - clipped)), rel,
            np.array([r["answerable"] for r in rows]), np.array([r["score"] for r in rows]),
            np.array([r["set"] for r in rows]), np.array([r["refused_anyway"] for r in rows]))


def figures(rows, refusals) -> dict:
    out = {}
    for name in SETS:
        index = [i for i, r in enumerate(rows) if r["set"] == name]
        if not index:
            continue
        has = [i for i in index if rows[i]["answerable"]]
        none = [i for i in index if not rows[i]["answerable"]]
        out[name] = {
            "answerable": len(has), "unanswerable": len(none),
            "answerable_refused_%": round(100 * np.mean([refusals[i] for i in has]), 1) if has else None,
            "unanswerable_refused_%": round(100 * np.mean([refusals[i] for i in none]), 1) if none else None,
            "answered_and_contained_%": round(100 * np.mean([rows[i]["score"] * (not refusals[i]) for i in has]), 1)
            if has else None,
            "short_answer_f1": round(100 * np.mean([rows[i]["f1"] * (not refusals[i]) for i in has]), 2)
            if has and name != "genai_dev" else None,
            # SQuAD 2.0 style over both kinds: an unanswerable question scores 1 when refused
            "overall_f1": round(100 * (sum(rows[i]["f1"] * (not refusals[i]) for i in has)
                                       + sum(refusals[i] for i in none)) / len(index), 2)
            if none and name != "genai_dev" else None,
        }
    return out


def fit(args) -> None:
    rows = [row for folder in args.folders for row in load_rows(Path(folder))]
    arrays = as_arrays(rows)
    groups = np.array([r["group"] for r in rows])
    cv_refused = np.zeros(len(rows), dtype=bool)
    for group in np.unique(groups):
        held = groups == group
        rule, _ = best_rule(arrays, ~held, args.cap)
        cv_refused[held] = rule_refuses(arrays, held, rule)
    rule, fitted_value = best_rule(arrays, np.ones(len(rows), dtype=bool), args.cap)
    margin, weight, gate = rule
    all_refused = rule_refuses(arrays, np.ones(len(rows), dtype=bool), rule)
    never = np.array([r["refused_anyway"] for r in rows])
    report = {"rule": {"margin": margin, "relevance_weight": weight, "min_relevance": gate},
              "cross_validated": figures(rows, cv_refused), "fitted_on_all": figures(rows, all_refused),
              "never_refusing": figures(rows, never), "questions": len(rows)}
    print(json.dumps(report, indent=1))
    if args.write:
        write_fit(Path(args.write), "decision", {"margin": margin, "relevance_weight": weight, "min_relevance": gate},
                  {"data": [f"../shared/eval/{name}" for name in SETS], "questions": len(rows),
                   "retrieve_k": recorded_k(args.folders), "cross_validated": report["cross_validated"],
                   "how": "grid search (margin, relevance_weight, min_relevance) maximising the mean over the "
                          "sets of the SQuAD-2.0-style score, refusing at most "
                          f"{100 * args.cap:g} % of any set's answerable questions; figures "
                          "leave-one-article/paragraph/paper-out"})


def write_fit(card_path: Path, key: str, values: dict, fit: dict) -> None:
    """Store fitted `values` under `key` in an adapter's card, with their provenance (command, commit) in `fit`."""
    card = json.loads(card_path.read_text())
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    command = "python bench/reader_calibrate.py " + " ".join(sys.argv[1:])
    card[key] = {**values, "fit": {"command": command, "commit": commit.strip(), **fit}}
    card_path.write_text(json.dumps(card, indent=1, sort_keys=True))
    print(f"{key} written to {card_path}", file=sys.stderr)


# -- the span's shape (`reading` in the card) ---------------------------------------------------------------------------
SPAN_SETS = ("squad", "squad2_dev", "papers_dev")
LENGTH_POWER = 0.375  # normalised_logprob = logprob / (tokens + 1) ** LENGTH_POWER (the grid's choice of stop 36)
SPAN_L2 = 0.001  # ridge on the standardised weights (0.0003 / 0.001 / 0.003 gave 10-fold CV means 61.3 / 61.3 / 60.7)


def load_spans(folders) -> list[dict]:
    """The answerable questions' recorded candidate spans (`candidates` in the details' span): the features
    `span_features` gives them (the answer service's own code) and each one's F1."""
    sys.path.insert(0, str(ROOT))
    from rag_app.eval.answers import best_over, f1_score
    from rag_app.services.extractive import SPAN_FEATURES, SpanCandidate, span_features

    papers = {q["id"]: q.get("answers") or [] for q in
              map(json.loads, open(EVAL / "papers_dev" / "questions.jsonl", encoding="utf-8"))}
    out = []
    for folder in folders:
        for name in SPAN_SETS:
            path = Path(folder) / f"{name}.jsonl"
            if not path.is_file():
                continue
            groups = _groups(name)
            for raw in map(json.loads, open(path, encoding="utf-8")):
                answerable = raw["answerable"] if name == "papers_dev" else raw["pass"] == "answerable"
                candidates = (raw.get("span") or {}).get("candidates")
                golds = papers.get(raw["id"], []) if name == "papers_dev" else raw.get("answers") or []
                if not answerable or not candidates or not golds:
                    continue
                group = raw.get("file") if name == "papers_dev" else groups.get(raw["id"], raw["id"])
                spans = [SpanCandidate(c["text"], 0, c["tokens"], c["logprob"], 0.0, c["logprob"])
                         for c in candidates]
                features = span_features(spans, candidates, raw["question"], LENGTH_POWER)
                out.append({"set": name, "group": f"{name}:{group}",
                            "features": np.array([[f[k] for k in SPAN_FEATURES] for f in features]),
                            "f1": np.array([best_over(f1_score, c["text"], golds) for c in candidates])})
    return out


def _fit_weights(rows, l2: float) -> np.ndarray:
    """Weights (of standardised features) maximising the mean over the sets of the expected F1 of a softmax over
    each question's candidates, with a ridge; deterministic (L-BFGS from zero)."""
    from scipy.optimize import minimize

    per_set = {name: sum(r["set"] == name for r in rows) for name in SPAN_SETS}

    def loss(w):
        total, grad = 0.0, np.zeros_like(w)
        for row in rows:
            x, f1 = row["z"], row["f1"]
            s = x @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            expected = p @ f1
            share = 1.0 / per_set[row["set"]]
            total -= share * expected
            grad -= share * (x.T @ (p * (f1 - expected)))
        return total + l2 * w @ w, grad + 2 * l2 * w

    return minimize(loss, np.zeros(rows[0]["z"].shape[1]), jac=True, method="L-BFGS-B").x


def fit_spans(args) -> None:
    """Fit the weights of `span_features` that choose the answer among the reader's likeliest spans
    (`reshape_spans`): a softmax over each question's recorded candidates, maximising the mean over the sets of the
    expected short-answer F1; figures leave-one-group-out (article, paragraph, paper)."""
    from rag_app.services.extractive import SPAN_FEATURES

    rows = load_spans(args.folders)
    stacked = np.concatenate([r["features"] for r in rows])
    mean, scale = stacked.mean(axis=0), stacked.std(axis=0) + 1e-9
    for row in rows:
        row["z"] = (row["features"] - mean) / scale
    sets = np.array([r["set"] for r in rows])
    groups = np.array([r["group"] for r in rows])

    def picked(w, index) -> float:  # the F1 of the span the weights choose (the first among equal scores)
        return float(rows[index]["f1"][int(np.argmax(rows[index]["z"] @ w))])

    cv = np.zeros(len(rows))
    for n, group in enumerate(np.unique(groups)):
        held = np.flatnonzero(groups == group)
        w = _fit_weights([rows[i] for i in np.flatnonzero(groups != group)], SPAN_L2)
        cv[held] = [picked(w, i) for i in held]
        print(f"\rleave-one-group-out: {n + 1}/{len(np.unique(groups))}", end="", file=sys.stderr)
    print(file=sys.stderr)
    w = _fit_weights(rows, SPAN_L2)
    fitted = np.array([picked(w, i) for i in range(len(rows))])
    weights = {name: round(float(v), 6) for name, v in zip(SPAN_FEATURES, w / scale)}
    figures_by_set = {s: {"questions": int((sets == s).sum()),
                          "likeliest_f1": round(100 * float(np.mean([r["f1"][0] for r in rows if r["set"] == s])), 2),
                          "cross_validated_f1": round(100 * float(cv[sets == s].mean()), 2),
                          "fitted_on_all_f1": round(100 * float(fitted[sets == s].mean()), 2),
                          "best_of_candidates_f1": round(100 * float(np.mean([r["f1"].max() for r in rows
                                                                               if r["set"] == s])), 2)}
                      for s in SPAN_SETS if (sets == s).any()}
    report = {"reading": {"length_power": LENGTH_POWER, "weights": weights}, "figures": figures_by_set,
              "cross_validated_mean_f1": round(float(np.mean([figures_by_set[s]["cross_validated_f1"]
                                                              for s in figures_by_set])), 2)}
    print(json.dumps(report, indent=1))
    if args.write:
        write_fit(Path(args.write), "reading", report["reading"],
                  {"data": [f"../shared/eval/{name}" for name in SPAN_SETS], "questions": len(rows),
                   "figures": figures_by_set, "retrieve_k": recorded_k(args.folders),
                   "how": "weights of the span's features (rag_app/services/extractive.py span_features) maximising "
                          "the mean over the sets of the expected short-answer F1 of a softmax over each answerable "
                          f"question's recorded likeliest spans, ridge {SPAN_L2} on standardised features; "
                          "cross_validated_f1 leave-one-article/paragraph/paper-out"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--home", required=True)
    rec.add_argument("--adapter", required=True)
    rec.add_argument("--out", required=True)
    rec.add_argument("--sets", nargs="*", choices=SETS)
    rec.set_defaults(func=record)
    fitter = sub.add_parser("fit")
    fitter.add_argument("folders", nargs="+", help="record folders (a set recorded twice: give one of them)")
    fitter.add_argument("--write", help="the reader_card.json to store the rule in")
    fitter.add_argument("--cap", type=float, default=MAX_ANSWERABLE_REFUSED,
                        help="the most answerable questions the rule may refuse in any set (a share)")
    fitter.set_defaults(func=fit)
    spans = sub.add_parser("fit-spans")
    spans.add_argument("folders", nargs="+", help="record folders")
    spans.add_argument("--write", help="the reader_card.json to store the weights in")
    spans.set_defaults(func=fit_spans)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
