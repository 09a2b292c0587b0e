"""Checks on the bundled knowledge base in corpus/ (the demos/ subfolder is excluded).

The app chunks pages by heading, so these tests check the heading structure,
topic coverage and section sizes that retrieval relies on.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
HEADING_RE = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE_RE = re.compile(r"^\s*(```|~~~)")
MAX_SECTION_WORDS = 400
MIN_PAGES = 10

# Every required topic -> regex that at least one heading in the corpus must match.
REQUIRED_TOPICS: dict[str, str] = {
    # Basics
    "AI vs ML": r"\bartificial intelligence\b.*\bmachine learning\b|\bAI\b.*\bML\b",
    "generative vs discriminative": r"generative.*discriminative|discriminative.*generative",
    "supervised learning": r"(?<!un)(?<!semi-)\bsupervised learning\b",
    "unsupervised learning": r"\bunsupervised learning\b",
    "semi-supervised learning": r"\bsemi-supervised learning\b",
    # Autoencoders
    "autoencoder": r"\bautoencoder\b",
    "encoder": r"\bthe encoder\b|\bencoder\b",
    "decoder": r"\bthe decoder\b|\bdecoder\b",
    "latent space": r"\blatent space\b",
    "reconstruction loss": r"\breconstruction loss\b",
    "compression": r"\bcompression\b",
    "denoising autoencoder": r"\bdenoising autoencoders?\b",
    # VAEs
    "VAE": r"\bvariational autoencoder\b|\bVAE\b",
    "Gaussian latent / probabilistic encoder": r"probabilistic encoder|gaussian latent",
    "reparameterisation trick": r"\breparameteri[sz]ation trick\b",
    "ELBO": r"\bELBO\b|evidence lower bound",
    "ELBO = reconstruction + KL": r"ELBO.*reconstruction.*KL",
    "KL divergence": r"\bKL divergence\b|kullback",
    "blurry VAE samples": r"\bblurry\b",
    "VAE applications": r"applications of VAEs?",
    # GANs
    "GAN": r"\bGAN\b|generative adversarial",
    "generator": r"\bthe generator\b",
    "discriminator": r"\bthe discriminator\b",
    "minimax game": r"\bminimax\b",
    "alternating training loop": r"alternating.*training loop",
    "GAN instability": r"\binstability\b",
    "mode collapse": r"\bmode collapse\b",
    "discriminator too strong / vanishing gradients": r"too strong.*vanishing gradients",
    "discriminator too weak / no signal": r"too weak.*(no useful signal|signal)",
    "WGAN": r"\bWGAN\b|wasserstein",
    "StyleGAN": r"\bStyleGAN\b",
    "CycleGAN": r"\bCycleGAN\b",
    "conditional GAN": r"\bconditional GANs?\b",
    "GAN applications": r"applications of GANs",
    # Diffusion
    "diffusion model": r"\bdiffusion model\b",
    "forward noising": r"\bforward\b.*\bnois",
    "reverse denoising": r"\breverse\b.*\bdenois",
    "DDPM": r"\bDDPM\b",
    "noise schedules (linear, cosine)": r"noise schedules?.*linear.*cosine",
    "U-Net": r"\bU-Net\b",
    "slow sampling": r"\bslow sampling\b",
    "DDIM / faster samplers": r"\bDDIM\b.*faster samplers",
    "latent diffusion": r"\blatent diffusion\b",
    "Stable Diffusion": r"\bStable Diffusion\b",
    "DiT": r"\bDiT\b|diffusion transformers?",
    "classifier-free guidance": r"\bclassifier-free guidance\b",
    "GANs vs diffusion": r"GANs? compared with diffusion|GANs? vs\.? diffusion",
    # Flows and autoregressive models
    "flow-based models": r"\bflow-based model\b|normali[sz]ing flow",
    "invertible transforms": r"\binvertible transform",
    "exact likelihood": r"\bexact likelihood\b",
    "change of variables": r"\bchange of variables\b",
    "RealNVP coupling layers": r"\bRealNVP\b.*coupling layers",
    "autoregressive models": r"\bautoregressive model",
    # Transformers and language models
    "transformer": r"\btransformer\b",
    "self-attention": r"\bself-attention\b",
    "multi-head attention": r"\bmulti-head attention\b",
    "positional encoding": r"\bpositional encoding\b",
    "encoder and decoder (transformer)": r"encoder and decoder in the transformer",
    "GPT next-token prediction": r"\bGPT\b.*next-token prediction",
    "BERT masked LM": r"\bBERT\b.*masked language model",
    "T5 span corruption": r"\bT5\b.*span corruption",
    "large-scale pretraining": r"\blarge-scale pretraining\b",
    "scaling laws": r"\bscaling laws\b",
    "instruction tuning": r"\binstruction tuning\b",
    "RLHF": r"\bRLHF\b|reinforcement learning from human feedback",
    "in-context learning": r"\bin-context learning\b",
    "knowledge distillation": r"\bknowledge distillation\b",
    # Training, inference and evaluation of LLMs
    "overfitting in LLMs": r"\boverfitting\b.*\bLLMs?\b|\boverfitting in large language models\b",
    "regularisation against overfitting": r"preventing overfitting.*regulari[sz]ation",
    "learning rate schedules": r"\blearning rate schedules?\b",
    "long-context cost": r"\blong contexts?\b",
    "KV cache, MQA and GQA": r"\bKV cache\b.*multi-query.*grouped-query",
    "FlashAttention": r"\bFlashAttention\b",
    "sparse / sliding-window attention": r"\bsparse\b.*\bsliding-window attention\b",
    "context extension (RoPE scaling, ALiBi)": r"extending the context window.*RoPE.*ALiBi",
    "long inputs at inference": r"\blong inputs\b.*\binference\b",
    "mixture of experts": r"\bmixture of experts\b|\bMoE\b",
    "perplexity limits": r"\bperplexity\b.*\blimits\b",
    "LLM generation metrics": r"\bmetrics\b.*\bLLM generation\b",
    "hallucination evaluation": r"\bevaluating\b.*\bhallucinations?\b",
    "hallucination mitigation": r"\bmitigating hallucinations?\b",
    "weight quantisation": r"\bquanti[sz]ation of LLM weights\b",
    # Embeddings
    "what an embedding is": r"\bwhat an embedding is\b",
    "word embeddings": r"^word embeddings$",
    "sentence embeddings": r"^sentence embeddings$",
    "word vs sentence embeddings": r"\bword embeddings compared with sentence embeddings\b",
    "contextual embeddings": r"\bcontextual embeddings\b",
    "out-of-vocabulary words": r"\bout-of-vocabulary\b",
    "categorical feature embeddings": r"\bhigh-cardinality categorical features\b",
    "triplet loss and margin": r"\btriplet loss\b.*\bmargin\b",
    "embedding evaluation": r"\bevaluating the quality of embeddings\b",
    "embedding quantisation": r"\bembedding quanti[sz]ation\b",
    "product quantisation": r"\bproduct quanti[sz]ation\b",
    "approximate nearest-neighbour search": r"\bnearest-neighbou?r search\b",
    # Multimodal models
    "multimodal model": r"\bwhat a multimodal model is\b",
    "multimodal vs unimodal": r"\bmultimodal versus unimodal\b",
    "modality encoders": r"\bmodality encoders\b",
    "CLIP": r"\bCLIP\b.*contrastive language-image",
    "contrastive image-text training": r"\bcontrastive image-text\b",
    "DALL-E": r"\bDALL-E\b.*text-to-image",
    "CLIP and DALL-E integration": r"\bCLIP and DALL-E\b",
    "masked language-image modelling": r"\bmasked language-image model",
    "vision-language pretraining": r"\bvision-language pretraining\b|\bVLP\b",
    "fusion strategies": r"\bfusion strategies\b",
    "cross-attention": r"\bcross-attention in multimodal models\b",
    "cross-attention weights": r"\bcross-attention weights\b",
    "attention in vision-language models": r"\battention mechanisms in vision-language models\b",
    "vision-language models": r"\bvision-language models and multimodal assistants\b",
    "multimodal training challenges": r"\bchallenges of training multimodal\b",
    "multimodal data sparsity": r"\bdata sparsity\b",
    "cross-modal embeddings": r"\bcross-modal embeddings\b",
    "multimodal evaluation": r"\bevaluating multimodal models\b",
    # RAG
    "RAG": r"\bRAG\b|retrieval-augmented generation",
    "why RAG": r"\bwhy use RAG\b|\bwhy RAG\b",
    "chunking": r"\bchunking\b",
    "embeddings": r"\bembeddings?\b",
    "dense retrieval": r"\bdense retrieval\b",
    "lexical / BM25": r"\blexical retrieval\b.*\bBM25\b|\bBM25\b",
    "hybrid retrieval": r"\bhybrid retrieval\b",
    "reranking": r"\breranking\b",
    "grounding and citations": r"\bgrounding\b.*\bcitations\b",
    "refusing": r"\brefus",
    # Evaluation
    "quality, diversity and speed": r"quality.*diversity.*speed",
    "FID": r"\bFID\b|fr[ée]chet inception distance",
    "Inception Score": r"\binception score\b",
    "likelihood / NLL": r"\bnegative log-likelihood\b|\bNLL\b",
    "bits per dimension": r"\bbits per dimension\b",
    "precision/recall for generative models": r"precision and recall for generative models",
    # Applications (modality and industry) and challenges
    "image applications": r"\bimage generation applications\b",
    "text applications": r"\btext generation applications\b",
    "audio applications": r"\baudio\b.*applications",
    "video applications": r"\bvideo generation applications\b",
    "code applications": r"\bcode generation applications\b",
    "molecule applications": r"\bmolecule\b.*applications",
    "healthcare applications": r"\bhealthcare applications\b",
    "media applications": r"\bmedia\b.*applications",
    "retail applications": r"\bretail\b.*applications",
    "finance applications": r"\bfinance\b.*applications",
    "software applications": r"\bsoftware\b.*applications",
    "compute cost": r"\bcompute cost\b",
    "data quality and licensing": r"\bdata quality\b.*\blicensing\b",
    "sampling speed": r"\bsampling speed\b",
    "bias": r"\bbias\b",
    "deepfakes": r"\bdeepfakes?\b",
    "ethics": r"\bethics\b",
}


def corpus_pages() -> list[Path]:
    return sorted(
        p for p in CORPUS.rglob("*.md") if "demos" not in p.relative_to(CORPUS).parts
    )


def parse_sections(text: str) -> list[dict]:
    """Split a Markdown page into sections: heading level, title, body word count."""
    sections: list[dict] = []
    in_fence = False
    for line in text.splitlines():
        if FENCE_RE.match(line):
            in_fence = not in_fence
        m = None if in_fence else HEADING_RE.match(line)
        if m:
            sections.append({"level": len(m.group(1)), "title": m.group(2), "words": 0})
        elif sections:
            sections[-1]["words"] += len(line.split())
        elif line.strip():
            sections.append({"level": 0, "title": "<before first heading>", "words": len(line.split())})
    return sections


PAGES = corpus_pages()


def all_headings() -> list[str]:
    return [
        s["title"]
        for page in PAGES
        for s in parse_sections(page.read_text(encoding="utf-8"))
        if s["level"] > 0
    ]


def test_corpus_has_pages():
    assert CORPUS.is_dir()
    assert len(PAGES) >= MIN_PAGES, [p.name for p in PAGES]
    assert (CORPUS / "README.md") in PAGES


@pytest.mark.parametrize("topic", sorted(REQUIRED_TOPICS))
def test_required_topic_has_heading(topic):
    pattern = re.compile(REQUIRED_TOPICS[topic], re.IGNORECASE)
    headings = all_headings()
    assert any(pattern.search(h) for h in headings), f"no heading covers {topic!r}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_page_has_exactly_one_title_first(page):
    sections = parse_sections(page.read_text(encoding="utf-8"))
    titles = [s for s in sections if s["level"] == 1]
    assert len(titles) == 1, f"{page.name}: {len(titles)} '#' titles"
    assert sections[0]["level"] == 1, f"{page.name}: content before the '#' title"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_empty_sections(page):
    sections = parse_sections(page.read_text(encoding="utf-8"))
    for i, s in enumerate(sections):
        nxt = sections[i + 1] if i + 1 < len(sections) else None
        has_children = nxt is not None and nxt["level"] > s["level"]
        assert s["words"] > 0 or has_children, f"{page.name}: empty section {s['title']!r}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_oversized_sections(page):
    sections = parse_sections(page.read_text(encoding="utf-8"))
    big = [(s["title"], s["words"]) for s in sections if s["words"] > MAX_SECTION_WORDS]
    assert not big, f"{page.name}: sections over {MAX_SECTION_WORDS} words: {big}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_duplicate_headings_within_page(page):
    titles = [s["title"].lower() for s in parse_sections(page.read_text(encoding="utf-8"))]
    dupes = {t for t in titles if titles.count(t) > 1}
    assert not dupes, f"{page.name}: duplicate headings {dupes}"


def test_readme_index_lists_every_page():
    index = (CORPUS / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in PAGES if p.name != "README.md" and p.name not in index]
    assert not missing, f"README.md index does not list: {missing}"


def test_parser_detects_structure_problems():
    # Guard the checks above: the parser must see two titles, an empty section and word counts.
    text = "# A\n\n## Empty\n\n## Full\none two three\n\n# B\n```\n# not a heading\n```\n"
    sections = parse_sections(text)
    assert [s["level"] for s in sections] == [1, 2, 2, 1]
    assert sections[1]["words"] == 0
    assert sections[2]["words"] == 3
    assert sections[3]["words"] == 6  # fenced lines, fence markers included, count as body text
