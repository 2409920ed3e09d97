"""The project's module graph: every module of vqcodec/, channels/ and cli.py with the project
modules it imports, counting imports inside functions (they hide a cycle from Python, not from a
reader), and each module's layer from ../shared/DESIGN.md.

    python benchmarks/module_graph.py            # layer, module -> imports; problems last
    python benchmarks/module_graph.py --check    # exit 1 on a cycle or an upward import

tests/test_layers.py runs the same checks.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: DESIGN.md's layers, bottom to top; a module imports only from its own layer or below.
LAYERS: dict[str, int] = {
    # 0 leaves
    "channels": 0, "vqcodec": 0, "vqcodec.bits": 0, "vqcodec.images": 0, "vqcodec.metrics": 0,
    "vqcodec.results": 0, "vqcodec.fec": 0, "vqcodec.ldpc": 0, "vqcodec.links": 0, "vqcodec.files": 0, "vqcodec.memory": 0,
    "vqcodec.precision": 0,
    # 1 models and their side information
    "vqcodec.model": 1, "vqcodec.checkpoint": 1, "vqcodec.prior": 1, "vqcodec.assignment": 1, "vqcodec.context": 1,
    "vqcodec.jscc": 1, "vqcodec.entropy": 1, "vqcodec.search": 1, "vqcodec.protocol": 1,
    # 2 the codec bundle (registry, loading)
    "vqcodec.zoo": 2,
    # 3 receivers
    "vqcodec.receivers": 3,
    # 4 experiments
    "vqcodec.simulate": 4, "vqcodec.baselines": 4, "vqcodec.cluster": 4, "vqcodec.plot": 4, "vqcodec.analog": 4,
    # 5 learning
    "vqcodec.learn": 5,
    # 6 suites, speed, the Python API
    "vqcodec.suites": 6, "vqcodec.speed": 6, "vqcodec.api": 6, "vqcodec.pictures": 6,
    # 7 the command line
    "cli": 7, "vqcodec.commands": 7,
}

#: the command line: the group (cli.py) and the commands and helpers it registers
COMMAND_LINE = ("cli", "vqcodec.commands")


def _within(mod: str, packages) -> bool:
    return any(mod == p or mod.startswith(p + ".") for p in packages)


def module_files(root: Path = ROOT) -> dict[str, Path]:
    files = sorted(root.glob("vqcodec/**/*.py")) + sorted(root.glob("channels/**/*.py")) + [root / "cli.py"]
    out = {}
    for p in files:
        parts = list(p.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _owner(name: str, modules) -> str | None:
    """The project module ``name`` refers to (itself, or the package holding it)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def project_imports(root: Path = ROOT) -> dict[str, list[str]]:
    """module -> sorted project modules it imports anywhere in its source."""
    modules = module_files(root)
    graph = {}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for a in node.names:  # `from pkg import submodule` imports the submodule
                    full = f"{target}.{a.name}"
                    found.add(full if full in modules else target)
        deps = {_owner(n, modules) for n in found} - {None, mod}
        graph[mod] = sorted(deps)
    return graph


def layer_of(mod: str) -> int | None:
    """The layer of ``mod`` or of the package holding it (``vqcodec.learn.codec`` -> learn's); a
    new vqcodec module has none until it is given one (never the top package's by default)."""
    parts = mod.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS and (key != "vqcodec" or mod == "vqcodec"):
            return LAYERS[key]
    return None


def cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def problems(graph: dict[str, list[str]]) -> list[str]:
    """Cycles, modules without a layer, imports that point upwards, and the named rules: channels/
    imports nothing of vqcodec, nothing imports cli, plot reads results files only, and the command
    line (cli, vqcodec.commands) reaches the library only through vqcodec.api."""
    out = [f"cycle: {' <-> '.join(c)}" for c in cycles(graph)]
    for mod, deps in sorted(graph.items()):
        lm = layer_of(mod)
        if lm is None:
            out.append(f"{mod}: no layer (add it to LAYERS and DESIGN.md)")
            continue
        for d in deps:
            ld = layer_of(d)
            if ld is not None and ld > lm:
                out.append(f"{mod} (layer {lm}) imports {d} (layer {ld}): upwards")
            if d == "cli":
                out.append(f"{mod} imports cli")
            if mod.split(".")[0] == "channels" and d.split(".")[0] != "channels":
                out.append(f"{mod} imports {d}: channels/ is a leaf")
        if mod == "vqcodec.plot" and set(deps) - {"vqcodec.results"}:
            out.append(f"vqcodec.plot imports {sorted(set(deps) - {'vqcodec.results'})}: it reads results only")
        beside_api = [d for d in deps if d != "vqcodec.api" and not _within(d, COMMAND_LINE)]
        if _within(mod, COMMAND_LINE) and beside_api:
            out.append(f"{mod} imports {beside_api}: the command line imports the library only through vqcodec.api")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when there is any problem")
    args = ap.parse_args(argv)
    graph = project_imports()
    for mod in sorted(graph, key=lambda m: (layer_of(m) if layer_of(m) is not None else 99, m)):
        print(f"{layer_of(mod)!s:>2}  {mod:<30} -> {', '.join(graph[mod]) or '-'}")
    found = problems(graph)
    print("\n".join(found) if found else "no cycle, no upward import")
    return 1 if (found and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())
