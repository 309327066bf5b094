"""The HTTP API of the video super-resolution service.

``vsr_api.handler.handler`` is the Lambda entry point (API Gateway REST proxy events). The
request service (``service``) depends on four ports (``ports``): storage, prober, job store
and scheduler; ``adapters`` holds the AWS ones (S3, PyAV over ranged GETs, DynamoDB, Batch)
and ``local`` the ones of the local server (a directory, JSON files, the local scheduler).
"""
