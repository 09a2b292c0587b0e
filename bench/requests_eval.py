"""Requests instead of questions ("List …", "Describe …", "Can you explain …") over the bundled corpus.

    python bench/requests_eval.py [--home H] [--json]

Each topic is asked three ways: as a question, as a request, and as a polite request ("Can you …"). The bundled
corpus covers every topic below, so a refusal is a miss; the off-topic requests at the end should be refused.
Reports the share answered per form, the off-topic refusals, and each reply's form (explain, short, quote).
Written for issue 26's "replies" item, not a fitted set: nothing was tuned on it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: (question, request, polite request) about topics of `corpus/`.
TOPICS = [
    ("What is the reparameterization trick?", "Describe the reparameterization trick.",
     "Can you explain the reparameterization trick?"),
    ("What are the main components of a RAG pipeline?", "List the main components of a RAG pipeline.",
     "Could you list the main components of a RAG pipeline?"),
    ("How are VAEs trained?", "Summarize how VAEs are trained.", "Can you summarise how VAEs are trained?"),
    ("What is mode collapse?", "Explain mode collapse.", "Could you tell me about mode collapse?"),
    ("How does a diffusion model generate images?", "Describe how a diffusion model generates images.",
     "Can you describe how a diffusion model generates images?"),
    ("What is a normalizing flow?", "Define a normalizing flow.", "Can you define a normalizing flow?"),
    ("How does self-attention work?", "Explain how self-attention works.", "Could you explain self-attention?"),
    ("What is classifier-free guidance?", "Describe classifier-free guidance.",
     "Can you tell me about classifier-free guidance?"),
    ("What is the evidence lower bound?", "Explain the evidence lower bound.",
     "Could you explain the evidence lower bound?"),
    ("How do GANs differ from VAEs?", "Compare GANs and VAEs.", "Can you compare GANs and VAEs?"),
    ("What is hybrid retrieval?", "Describe hybrid retrieval.", "Can you explain hybrid retrieval?"),
    ("What does the diffusion demo do?", "Give an overview of the diffusion demo.",
     "Could you give me an overview of the diffusion demo?"),
    ("What is an autoencoder?", "Tell me about autoencoders.", "Can you explain what an autoencoder is?"),
    ("What is FID?", "Explain FID.", "Could you describe FID?"),
    ("What are the challenges of training GANs?", "List the challenges of training GANs.",
     "Can you list the challenges of training GANs?"),
    ("What is chunking in RAG?", "Describe chunking in RAG.", "Could you explain chunking in RAG?"),
]
OFF_TOPIC = ["Describe the capital of France.", "Tell me about quantum chromodynamics.",
             "List the ingredients of a margherita pizza.", "Can you explain the rules of cricket?",
             "Summarize the plot of Hamlet.", "Give an overview of the French Revolution."]
FORMS = ("question", "request", "polite")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", help="data home with the bundled corpus ingested (default: RAG_HOME)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from rag_app.api import RAG
    from rag_app.settings import Settings

    rag = RAG(Settings(**({"home": args.home} if args.home else {})))
    rows, started = [], time.perf_counter()
    for topic in TOPICS:
        for form, text in zip(FORMS, topic):
            answer = rag.ask(text)
            rows.append({"form": form, "text": text, "refused": answer.refused, "reply": answer.extra.get("form"),
                         "abstained": answer.extra.get("abstained")})
    for text in OFF_TOPIC:
        answer = rag.ask(text)
        rows.append({"form": "off-topic", "text": text, "refused": answer.refused, "reply": answer.extra.get("form")})
    summary = {}
    for form in (*FORMS, "off-topic"):
        mine = [r for r in rows if r["form"] == form]
        answered = sum(not r["refused"] for r in mine)
        summary[form] = {"asked": len(mine), "answered_%": round(100 * answered / len(mine), 1),
                         "explained": sum(r["reply"] == "explain" for r in mine)}
    summary["seconds"] = round(time.perf_counter() - started, 1)
    for row in rows:
        print(f"{'REFUSED' if row['refused'] else 'answered':8s} {str(row['reply']):8s} {row['form']:9s} {row['text']}",
              file=sys.stderr)
    print(json.dumps(summary if not args.json else {"summary": summary, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
