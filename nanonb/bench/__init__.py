"""Benchmarks: ``python -m nanonb.bench <protocol> [--quick] [--out results.json]``.

- :mod:`~nanonb.bench.run` — the registry (protocol name -> ``"module:function"``) and the CLI;
- :mod:`~nanonb.bench.schema` — the result schema, the text table and the one ``--set`` rule;
- one module per protocol: :mod:`~nanonb.bench.nanoalloys`, :mod:`~nanonb.bench.calisol`,
  :mod:`~nanonb.bench.lnpdb` (both on the recipe of :mod:`~nanonb.bench.casestudy`),
  :mod:`~nanonb.bench.notebooks`, and ``active``, ``tb``, ``forces``.

Speed and accuracy targets live here, not in timed unit tests; ``--quick`` runs a reduced
configuration (used by the tests). Importing this package imports no protocol (``nanonb.bench.run``
is the registry module; :func:`nanonb.bench.run.run` runs a protocol from Python).
"""

from .run import PROTOCOLS, main
from .schema import SCHEMA_KEYS, apply_options, format_table, make_result, summary_to_rows

__all__ = ["PROTOCOLS", "SCHEMA_KEYS", "apply_options", "format_table", "main", "make_result", "summary_to_rows"]
