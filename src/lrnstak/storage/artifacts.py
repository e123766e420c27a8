"""Model artifacts and training data in the models bucket (S3)."""

import gzip
from collections.abc import Iterable
from typing import IO, Any

from botocore.exceptions import ClientError

from lrnstak import json_codec
from lrnstak.storage.clients import S3Client
from lrnstak.storage.errors import ArtifactMissing, error_code, translate_aws_errors

MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
# gzip's fastest level: 100,000 training rows (30 MB of JSON) compress in ~0.3 s to 12.6 MB, where the default
# (9) takes ~7 s for 9.9 MB, and those seconds were most of what a large training request spent saving.
JSON_COMPRESSION_LEVEL = 1


class ArtifactStore:
    def __init__(self, s3: S3Client, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def put_bytes(self, key: str, data: bytes, content_type: str, sha256: str | None = None) -> None:
        metadata = {"sha256": sha256} if sha256 else {}
        with translate_aws_errors("save an artifact"):
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=data, ContentType=content_type, Metadata=metadata)

    def put_file(self, key: str, file: IO[bytes], size: int, content_type: str) -> None:
        """A file streamed from its current position (one PUT: S3 takes up to 5 GB so)."""
        with translate_aws_errors("save an output file"):
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=file, ContentLength=size, ContentType=content_type)

    def get_bytes(self, key: str) -> bytes:
        try:
            with translate_aws_errors("read an artifact"):
                response = self._s3.get_object(Bucket=self._bucket, Key=key)
                return response["Body"].read()
        except ClientError as error:
            if error_code(error) in MISSING_OBJECT_CODES:
                raise ArtifactMissing(f"Artifact {key} is not in the bucket.") from error
            raise

    def put_json(self, key: str, document: Any) -> None:
        """A JSON document, gzip-compressed (training rows, job requests)."""
        body = gzip.compress(json_codec.encode(document), compresslevel=JSON_COMPRESSION_LEVEL, mtime=0)
        self.put_bytes(key, body, "application/gzip")

    def get_json(self, key: str) -> Any:
        return json_codec.decode(gzip.decompress(self.get_bytes(key)))

    def delete_keys(self, keys: Iterable[str]) -> None:
        objects: Any = [{"Key": key} for key in keys]
        for start in range(0, len(objects), 1000):
            with translate_aws_errors("delete artifacts"):
                self._s3.delete_objects(
                    Bucket=self._bucket, Delete={"Objects": objects[start : start + 1000], "Quiet": True}
                )

    def exists(self, key: str) -> bool:
        try:
            with translate_aws_errors("look for an object"):
                self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            if error_code(error) in MISSING_OBJECT_CODES:
                return False
            raise
        return True

    def presigned_put_url(self, key: str, expires_in_seconds: int) -> str:
        with translate_aws_errors("sign an upload URL"):
            return str(
                self._s3.generate_presigned_url(
                    "put_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in_seconds
                )
            )

    def presigned_get_url(self, key: str, expires_in_seconds: int) -> str:
        with translate_aws_errors("sign a download URL"):
            return str(
                self._s3.generate_presigned_url(
                    "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in_seconds
                )
            )
