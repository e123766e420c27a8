"""The cache: JSON values and lists per key, with exact expiry, in DynamoDB (large values in S3)."""
