"""Build the model registry: fetch sources, export to OpenVINO, compress with NNCF, verify.

This package is the only place torch, transformers and optimum are used; the
web app reads what it writes through ``webapp.registry`` and never imports it.
"""
