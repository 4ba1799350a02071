"""The analysts' catalog: every Delta table and documented view as SQL database ``aegis``.

* :mod:`analysts.catalog`: the tables (contracts, silver's from the feature declarations) by catalog name.
* :mod:`analysts.views`: the documented views; their SQL lives in ``views/*.sql``, written in the subset
  Spark SQL and DuckDB share, so both engines answer the same questions.
* :mod:`analysts.spark`: registration in a Spark session catalog (``aegis sql``, ``make sql``).
* :mod:`analysts.local`: the same tables and views without Spark (deltalake -> Arrow, DuckDB, polars).
* :mod:`analysts.dictionary`: docs/tables.md, rendered from the contracts and the view docs.
"""
