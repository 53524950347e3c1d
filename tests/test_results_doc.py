"""Every table in docs/RESULTS.md that cites a JSON file is exactly what the benchmark script renders from
that file (``<!-- table: NAME.json -->`` above the table), and every cited JSON file exists."""

from __future__ import annotations

import re

import pytest

from tests.helpers import ROOT, run_script

DOCS = ROOT / "docs"
MARKER = re.compile(r"^<!-- table: (\S+\.json) -->$")


def cited_tables() -> list[tuple[str, str]]:
    """(JSON file name, the markdown table below its marker) for every marker in RESULTS.md."""
    lines = (DOCS / "RESULTS.md").read_text().splitlines()
    found = []
    for i, line in enumerate(lines):
        match = MARKER.match(line.strip())
        if match:
            table = []
            for row in lines[i + 1:]:
                if not row.startswith("|"):
                    break
                table.append(row)
            found.append((match.group(1), "\n".join(table)))
    return found


def test_results_cites_json_for_its_tables():
    names = [name for name, _ in cited_tables()]
    assert {"quality.json", "paper_mnist_noise.json", "paper_mnist_projection.json", "paper_mnist_genspan.json"} <= set(names)


@pytest.mark.parametrize("name,table", cited_tables(), ids=[name for name, _ in cited_tables()])
def test_results_table_matches_its_json(name, table, tmp_path):
    rendered = run_script("benchmarks/quality.py", "--markdown", str(DOCS / name), cwd=tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    assert table == rendered.stdout.strip()
