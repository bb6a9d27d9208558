"""Demo traffic: realistic OTLP spans for trying the dashboard (bin/demo), the tests and bench/.

Not part of the product: production settings leave this app out. `PORTAL_DEMO=1` (bin/demo) or the
test settings add it to INSTALLED_APPS, which brings its management commands `demo_setup` and
`demo_traces`. `demo.traffic` itself is plain Python (no Django), so tests and bench scripts import
it directly.
"""
