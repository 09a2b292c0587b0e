"""Training the reader: the LM fine-tuned (LoRA) to pick the answer span from the evidence, or to say there is none.

- `rag_app.training.data`: question-answer sets → reader examples in the exact prompt the answer service builds
  (question + the ranker's offered sentences → the verbatim span, or `NO_ANSWER`), with abstention examples made
  from our own retrieval (topical passages that do not hold the answer) and from perturbed questions.
- `rag_app.training.trainer`: the seeded, resumable LoRA loop (`rag train-reader`), which writes a safetensors
  adapter and its card.
"""
