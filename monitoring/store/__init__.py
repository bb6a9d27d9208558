"""Store: the only way into the ClickHouse engine (embedded chdb or a server over the native protocol).

- `clickhouse`: query, insert, tags and timing, ClickHouseError; `sql`: composable statements with
  bound parameters (and ns <-> datetime); `schema`: the tables, views and rollups;
- `errors`: engine trouble as people see it; `maintenance`: schema and retention while a portal
  holds the embedded data folder.
"""
