"""Relative links in the README and docs/ point at files that exist and at headings that exist.

A section renamed or moved (as the case-study run history moved to ``docs/case_studies.md``) must not leave a
dead link on the front page. Anchors follow GitHub's rule: the heading in lower case, punctuation dropped (letters,
digits, ``_``, ``-`` and spaces kept, unicode letters included), spaces turned into ``-``, and ``-1``, ``-2`` ...
appended to repeated headings. Links inside code blocks are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "tests" / "README.md"]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _prose(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading.

    Example
    -------
    >>> slug("LNPDB, leave-study-out (38 studies → 54 tasks), Spearman ρ")
    'lnpdb-leave-study-out-38-studies--54-tasks-spearman-ρ'
    """
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in _prose(page.read_text()).splitlines():
        m = re.match(r"#{1,6} (.+)", line)
        if m:
            s = slug(m.group(1))
            out.add(s if s not in seen else f"{s}-{seen[s]}")
            seen[s] = seen.get(s, 0) + 1
    return out


def test_slug_follows_github():
    assert slug("Quickstart result: which learner to use") == "quickstart-result-which-learner-to-use"
    assert slug("CALiSol-23, leave-salt-out (56 systems, 9 salts), MAE of log10 k (mS/cm)") == \
        "calisol-23-leave-salt-out-56-systems-9-salts-mae-of-log10-k-mscm"
    assert slug("LNPDB, leave-study-out (38 studies → 54 tasks), Spearman ρ and top-10 % recall on the query") == \
        "lnpdb-leave-study-out-38-studies--54-tasks-spearman-ρ-and-top-10--recall-on-the-query"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_relative_links_resolve(page):
    dead = []
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"[a-z]+:", target):                  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            dead.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            dead.append(f"{target}: no heading with anchor #{anchor} in {dest.name}")
    assert not dead, f"dead links in {page.name}:\n" + "\n".join(dead)
