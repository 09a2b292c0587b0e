"""The layers, checked by reading the imports: heavy libraries and components' private names stay in components/.

components/ (embedder, LM, store, lexical index, reranker) wrap chromadb, transformers and friends; services,
ingest and the faces use the components' public interfaces only, and the faces reach components only through the
composition root, `rag_app/api.py` (`RAG`). No module imports, even inside a function, a module that imports it
back. `import rag_app` stays cheap. The demos are standalone PyTorch files.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Libraries only components may import (torch is also the demos' own).
COMPONENT_ONLY = {"chromadb", "transformers", "sentence_transformers", "openvino", "onnxruntime", "onnx", "bm25s",
                  "Stemmer", "tokenizers", "torch", "safetensors", "gguf", "peft"}
TORCH_ALLOWED = ("rag_app/demos/",)
#: The reader's trainer changes a model's weights itself (LoRA on the LM), so it drives torch, transformers and peft
#: directly; it is a job of its own (`rag train-reader`), which no service or face imports.
TRAINING_ALLOWED = ("rag_app/training/", {"torch", "safetensors", "transformers", "peft"})


def modules() -> list[tuple[str, ast.AST]]:
    files = [*(REPO / "rag_app").rglob("*.py"), *(REPO / "ingest").rglob("*.py"), REPO / "streamlit_app.py"]
    return [(f.relative_to(REPO).as_posix(), ast.parse(f.read_text(encoding="utf-8"))) for f in sorted(files)]


def imported(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.lineno, node.module or "", [alias.name for alias in node.names]


def test_heavy_libraries_are_imported_by_components_only():
    offences = []
    for rel, tree in modules():
        if rel.startswith("rag_app/components/"):
            continue
        for line, module, _ in imported(tree):
            top = module.split(".")[0]
            if top in COMPONENT_ONLY and not (top in {"torch", "safetensors"} and rel.startswith(TORCH_ALLOWED)) \
                    and not (rel.startswith(TRAINING_ALLOWED[0]) and top in TRAINING_ALLOWED[1]):
                offences.append(f"{rel}:{line} imports {module}")
    assert not offences, "\n".join(offences)


def private_attributes(tree: ast.AST) -> set[str]:
    """The `_names` a module sets on its own objects (`self._x = ...`)."""
    return {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and node.attr.startswith("_")}


def test_no_private_name_of_a_component_is_used_outside_components():
    parsed = modules()
    component_private = set().union(*(private_attributes(tree) for rel, tree in parsed
                                      if rel.startswith("rag_app/components/")))
    offences = []
    for rel, tree in parsed:
        if rel.startswith("rag_app/components/"):
            continue
        own = private_attributes(tree)
        for line, module, names in imported(tree):
            if module.startswith("rag_app.components") and any(n.startswith("_") for n in names):
                offences.append(f"{rel}:{line} imports {names} from {module}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr in component_private and node.attr not in own
                    and not (isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"})):
                offences.append(f"{rel}:{node.lineno} reads {ast.unparse(node)}")
    assert not offences, "\n".join(offences)


def test_components_import_nothing_above_them():
    offences = []
    for rel, tree in modules():
        if not rel.startswith("rag_app/components/"):
            continue
        for line, module, _ in imported(tree):
            if module.startswith(("rag_app.services", "rag_app.ui", "rag_app.cli", "rag_app.api", "rag_app.eval",
                                  "ingest", "streamlit")):
                offences.append(f"{rel}:{line} imports {module}")
    assert not offences, "\n".join(offences)


def test_services_import_no_face():
    offences = []
    for rel, tree in modules():
        if not rel.startswith(("rag_app/services/", "ingest/")):
            continue
        for line, module, _ in imported(tree):
            if module.startswith(FACES):
                offences.append(f"{rel}:{line} imports {module}")
    assert not offences, "\n".join(offences)


#: The faces and their frameworks: services and ingest import none of them.
FACES = ("rag_app.ui", "rag_app.cli", "rag_app.api", "rag_app.serve", "rag_app.mcp", "streamlit", "argparse",
         "fastapi", "starlette", "uvicorn", "mcp")


def test_the_http_and_mcp_faces_go_through_the_rag_class_not_components():
    offences = []
    for rel, tree in modules():
        if not rel.startswith(("rag_app/serve/", "rag_app/mcp/")):
            continue
        for line, module, _ in imported(tree):
            if module.startswith(("rag_app.components", "ingest")):
                offences.append(f"{rel}:{line} imports {module}")
    assert not offences, "\n".join(offences)


def test_only_the_training_command_imports_the_trainer():
    offences = [f"{rel}:{line} imports {module}" for rel, tree in modules()
                if not rel.startswith(("rag_app/training/", "rag_app/cli/train_cmd.py"))
                for line, module, _ in imported(tree) if module.startswith("rag_app.training")]
    assert not offences, "\n".join(offences)


def test_only_the_mcp_face_imports_the_mcp_sdk_and_only_where_it_is_served():
    """The SDK is the MCP face's framework: `rag_app/mcp/` imports it (its server module at the top, for the tool
    signatures the SDK reads); `rag mcp` and `rag serve` reach it through `rag_app.mcp.server`, inside the function
    that serves, so `import rag_app` and every other command never load it."""
    sdk, lazy = [], []
    for rel, tree in modules():
        top_level = {id(node) for node in getattr(tree, "body", [])}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)) or getattr(node, "level", 0):
                continue
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if name.split(".")[0] == "mcp" and not rel.startswith("rag_app/mcp/"):
                    sdk.append(f"{rel}:{node.lineno} imports {name}")
                if name.startswith("rag_app.mcp") and id(node) in top_level and not rel.startswith("rag_app/mcp/"):
                    lazy.append(f"{rel}:{node.lineno} imports {name} at module level")
    assert not sdk, "\n".join(sdk)
    assert not lazy, "\n".join(lazy)


def test_importing_rag_app_and_the_cli_does_not_load_the_mcp_sdk():
    import subprocess
    import sys

    code = ("import sys, rag_app; from rag_app.api import RAG; from rag_app.cli import build_parser; build_parser(); "
            "import rag_app.mcp; loaded = [m for m in sys.modules if m == 'mcp' or m.startswith(('mcp.', 'mcp_types'))]; "
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


#: The faces: parse input, call `RAG`, render the result. `rag_app/api.py` is the composition root (it builds the
#: components); every other face reaches components through it.
FACE_FILES = ("rag_app/cli/", "rag_app/ui/", "streamlit_app.py", "rag_app/eval/", "rag_app/serve/", "rag_app/mcp/",
              "rag_app/integrations/")


def test_faces_reach_components_only_through_the_rag_class():
    offences = [f"{rel}:{line} imports {module}" for rel, tree in modules() if rel.startswith(FACE_FILES)
                for line, module, _ in imported(tree)
                if module == "rag_app.components" or module.startswith("rag_app.components.")]
    assert not offences, "\n".join(offences)


def module_name(rel: str) -> str:
    parts = rel.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports, at module level or inside a function (not under TYPE_CHECKING,
    which never runs). `from package import name` points at `package.name` when that is a module, else at the
    package."""
    parsed = modules()
    names = {module_name(rel) for rel, _ in parsed}
    graph: dict[str, set[str]] = {}
    for rel, tree in parsed:
        type_only = {id(node) for guard in ast.walk(tree)
                     if isinstance(guard, ast.If) and ast.unparse(guard.test).endswith("TYPE_CHECKING")
                     for stmt in guard.body for node in ast.walk(stmt)}
        targets = set()
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name in names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if full in names or node.module in names:
                        targets.add(full if full in names else node.module)
        me = module_name(rel)
        graph[me] = targets - {me}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def shortest_loop(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """The shortest import loop inside one strongly connected group, as [a, b, ..., a]."""
    members = set(group)
    best: list[str] = []
    for start in group:
        paths = {start: [start]}
        frontier = [start]
        while frontier and not (best and len(paths[frontier[0]]) >= len(best)):
            step = []
            for v in frontier:
                for w in sorted(graph[v] & members):
                    if w == start and (not best or len(paths[v]) + 1 < len(best)):
                        best = [*paths[v], start]
                    elif w not in paths:
                        paths[w] = [*paths[v], w]
                        step.append(w)
            frontier = step
    return best


def test_no_import_cycles_even_inside_functions():
    graph = import_graph()
    loops = [" -> ".join(shortest_loop(graph, group)) for group in import_cycles(graph)]
    assert not loops, "modules that import each other (the shortest loop of each tangle):\n" + "\n".join(loops)


#: What `import rag_app` (and building the API object and the CLI parser) must not load: each costs seconds or
#: hundreds of MB, and is imported inside the function that needs it.
HEAVY = ("torch", "chromadb", "transformers", "sentence_transformers", "openvino", "streamlit", "mcp")


def test_importing_rag_app_loads_no_heavy_library():
    import subprocess
    import sys

    code = ("import sys, rag_app; from rag_app.api import RAG; from rag_app.cli import build_parser; build_parser(); "
            f"heavy = {HEAVY!r}; "
            "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", f"import rag_app loaded {done.stdout.strip()}"


def test_every_project_import_names_a_module_that_exists():
    """Function-level imports run only when their function does: a module moved without its importers updated
    would fail late (a backend's first conversion, a rarely used command). Every `rag_app.*` / `ingest.*` import,
    wherever it stands, must name an existing module."""
    parsed = modules()
    names = {module_name(rel) for rel, _ in parsed}
    offences = [f"{rel}:{line} imports {module}" for rel, tree in parsed for line, module, _ in imported(tree)
                if module.split(".")[0] in {"rag_app", "ingest"} and module not in names]
    assert not offences, "\n".join(offences)
