"""The engine: configuration, rules and templates loaded once, then pods in, patches out.

No I/O after loading; needs only jinja2, pyyaml, jsonpatch and protobuf. One module per step
of a review: admission (the envelope), requests (the annotations), rules/ (which rule takes a
request), templating/ (what it renders), compose/ (the patch), runtime (the Engine driving
them), with memo (answers remembered), budget (the caches' bounds) and errors beneath.
"""
