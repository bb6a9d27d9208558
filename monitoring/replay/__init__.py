"""Replay: a recorded run stepped through, one LLM call re-run through the gateway, two runs compared.

- `steps`: a trace as steps (reads only);
- `forms`: the re-run editor (the recorded request, the edited one checked);
- `rerun`: the gateway call and the span that records it;
- `diff`: the word diff of two answers; `compare`: two runs' steps aligned.
"""
