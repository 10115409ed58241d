"""Report: the paper's tables and figures from the cached parquet files."""
