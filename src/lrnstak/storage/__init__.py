"""Every boto3 call lives in this package; AWS errors leave it as domain errors."""
