"""Helpers of the API tests: generated media and a moto world (S3, DynamoDB, Batch)."""
