"""Files at the edges: atomic writes, Parquet/JSON/CSV IO, logs, code digests, column names,
and users' own tables (``source: table``)."""
