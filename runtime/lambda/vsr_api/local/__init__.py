"""The local API server: the same handler over HTTP, with a directory for a bucket.

Importing ``scheduler`` needs the worker package (``pip install vsr-api[local]``); the
Lambda never imports this package.
"""
