"""AWS adapters of the request service's ports: S3, PyAV prober, DynamoDB, Batch."""
