"""The public API over HTTP only, against any endpoint: the embedded stack, LocalStack or a deployed stack."""
