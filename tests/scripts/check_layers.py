#!/usr/bin/env python3
"""The include layering of src/dualtune (run by ctest as repo.layers).

Reads the order from src/dualtune/LAYERS and every src/dualtune/**/*.{h,cc}; fails, naming
file:line and the include, when a file includes a header of a higher layer, when a file
of a torch-free layer includes libtorch (<torch/...>, <ATen/...>, <c10/...>), or when a
folder under src/dualtune is in no layer. Usage: check_layers.py [REPO_ROOT]
"""
import os
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')
TORCH = ("torch/", "ATen/", "c10/")
MARKER = "--- torch side ---"


def read_layers(path):
    """(rank of each layer, set of torch-free layers) from the LAYERS file."""
    rank, torch_free, seen_marker = {}, set(), False
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line == MARKER:
                seen_marker = True
                continue
            rank[line] = len(rank)
            if not seen_marker:
                torch_free.add(line)
    return rank, torch_free


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
    src = os.path.join(root, "src", "dualtune")
    rank, torch_free = read_layers(os.path.join(src, "LAYERS"))
    problems, files = [], 0
    for dirpath, _, names in sorted(os.walk(src)):
        for name in sorted(names):
            if not name.endswith((".h", ".cc")):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            layer = os.path.relpath(path, src).split(os.sep)[0]
            if layer not in rank:
                problems.append(f"{rel}: folder '{layer}' is in no layer of src/dualtune/LAYERS")
                continue
            files += 1
            with open(path, encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    inc = m.group(1)
                    if inc.startswith("dualtune/"):
                        target = inc.split("/")[1]
                        if target not in rank:
                            problems.append(f"{rel}:{n}: #include \"{inc}\": '{target}' is in no layer")
                        elif rank[target] > rank[layer]:
                            problems.append(f"{rel}:{n}: #include \"{inc}\": {layer} (layer {rank[layer]}) "
                                            f"includes {target} (layer {rank[target]}), a higher layer")
                    elif inc.startswith(TORCH) and layer in torch_free:
                        problems.append(f"{rel}:{n}: #include <{inc}>: {layer} is torch-free (src/dualtune/LAYERS)")
    for p in problems:
        print(p)
    print(f"{files} files of {len(rank)} layers checked: {len(problems)} violations")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
