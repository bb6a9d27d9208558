"""The web layer: views (`views/`), the request parsed into a question (`forms`), the viewer's
language and zone (`preferences`), the Overview's cards (`kpis`), charts (`charts`), how numbers
read (`display`) and the stack's status checks (`health`). It asks its questions through
monitoring/queries/ only; nothing below it imports it.
"""
