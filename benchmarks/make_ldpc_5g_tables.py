"""Generate ``ldpc_5g_base_graphs.npz``: the 3GPP TS 38.212 LDPC base graphs.

Run once (needs ``sionna-no-rt`` installed, but does not import it)::

    .venv/bin/python benchmarks/make_ldpc_5g_tables.py

Source: the base-graph tables (38.212 Tables 5.3.2-2 and 5.3.2-3) that
Sionna ships as ``sionna/phy/fec/ldpc/codes/5G_bg1.csv`` and ``5G_bg2.csv``
(semicolon separated; two header lines; then one line per nonzero entry:
row index (blank = same row as above), column index, and the shift value
V_ij for the eight lifting-set indices i_LS = 0..7).

Output arrays, for ``g`` in ``bg1``, ``bg2``:

* ``{g}_shape``: (rows, columns) of the base graph, (46, 68) and (42, 52);
* ``{g}_rows``, ``{g}_cols``: uint8 (E,) position of each nonzero entry,
  sorted by row, then column (E = 316 and 197);
* ``{g}_shifts``: int16 (8, E) the shift values V_ij per i_LS (not yet
  reduced modulo Z).

``vqcodec.ldpc.graphs`` reads them; ``tests/test_ldpc.py`` checks them against Sionna's own loader.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SHAPES = {"bg1": (46, 68), "bg2": (42, 52)}
OUT = Path(__file__).resolve().parents[1] / "vqcodec" / "data" / "ldpc_5g_base_graphs.npz"


def sionna_csv_dir() -> Path:
    spec = importlib.util.find_spec("sionna")  # locates the package, does not import it
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("sionna is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "phy" / "fec" / "ldpc" / "codes"


def parse_csv(path: Path):
    rows, cols, shifts = [], [], []
    row = None
    lines = path.read_text().splitlines()
    for line in lines[2:]:
        fields = [f.strip() for f in line.split(";")]
        if not any(fields):
            continue
        if fields[0]:
            row = int(fields[0])
        rows.append(row)
        cols.append(int(fields[1]))
        shifts.append([int(v) for v in fields[2:10]])
    rows, cols = np.array(rows), np.array(cols)
    shifts = np.array(shifts).T  # (8, E)
    order = np.lexsort((cols, rows))
    return rows[order], cols[order], shifts[:, order]


def main():
    src = sionna_csv_dir()
    arrays = {}
    for g, shape in SHAPES.items():
        rows, cols, shifts = parse_csv(src / f"5G_{g}.csv")
        assert rows.max() < shape[0] and cols.max() < shape[1]
        assert len(set(zip(rows.tolist(), cols.tolist()))) == rows.size, "duplicate entry"
        assert shifts.min() >= 0 and shifts.max() < 384
        arrays[f"{g}_shape"] = np.array(shape, np.int16)
        arrays[f"{g}_rows"] = rows.astype(np.uint8)
        arrays[f"{g}_cols"] = cols.astype(np.uint8)
        arrays[f"{g}_shifts"] = shifts.astype(np.int16)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes): "
          + ", ".join(f"{g}: {arrays[g + '_rows'].size} entries" for g in SHAPES))


if __name__ == "__main__":
    main()
