"""Quality: how well runs went, beside how much and how fast.

- `models`: a project's score configs (name, numeric / categorical / boolean, range or labels, which
  direction is better); names without a config are accepted from every source and still show;
- `scores`: writing a score (API, a person's feedback, a judge) into `otel_scores`, checked against
  its config; evaluation events become scores in ClickHouse itself (monitoring/store/schema.py);
- `api`: `/api/v1/projects/<id>/scores`; `views`: feedback from the trace and session pages.
Scores are read through monitoring/queries/scores.py like everything else the pages show.
"""
