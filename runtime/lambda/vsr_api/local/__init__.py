"""The local API server: the same handler over HTTP (uvicorn), with a directory for a bucket.

Needs the ``local`` extra (``pip install vsr-api[local]``: the worker package, uvicorn,
Starlette); the Lambda never imports this package.
"""
