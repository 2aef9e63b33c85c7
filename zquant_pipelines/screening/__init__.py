"""Stock screens (zquant's batch_stock_filter), plain functions with no Dagster: the
condition language (``expressions``), the screens file (``screens``) and screens run over
a trading day of the warehouse (``run``)."""
