"""Object store: a local directory by default, S3 or any S3-compatible store in production.

The model registry and the asset IO manager both sit on this one interface, so switching
a deployment to S3 is a resource choice, not a code change.
"""

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_aws.s3 import S3Resource
from pydantic import PrivateAttr


class ObjectExistsError(FileExistsError):
    """`create_exclusive` found the key already taken."""


class ObjectStore(dg.ConfigurableResource):
    """Keys are '/'-separated paths relative to the store's root."""

    def put_bytes(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def create_exclusive(self, key: str, data: bytes) -> None:
        """Write only if the key does not exist yet (raises `ObjectExistsError`); the
        registry relies on it so that two concurrent runs never get the same version."""
        raise NotImplementedError

    def get_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def list_keys(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def stamps(self, prefix: str) -> dict[str, str]:
        """Key → a stamp that changes when the object is rewritten, for every key under
        ``prefix`` in one listing: how a reader notices new data without reading it."""
        raise NotImplementedError

    def uri(self, key: str) -> str:
        raise NotImplementedError


class LocalObjectStore(ObjectStore):
    """A directory on the local filesystem (default: `.comfort/store`)."""

    root: str = ".comfort/store"

    def _path(self, key: str) -> Path:
        path = (Path(self.root) / key).resolve()
        if Path(self.root).resolve() not in path.parents:
            raise ValueError(f"object key {key!r} escapes the store root")
        return path

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # write then rename: readers never see a half-written object
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, prefix=".tmp-") as tmp:
            tmp.write(data)
        os.replace(tmp.name, path)

    def create_exclusive(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError as err:
            raise ObjectExistsError(key) from err
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        if not path.exists():
            raise FileNotFoundError(f"no object {key!r} in {self.root}")
        return path.read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def _files(self, prefix: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """(key, directory entry) of every stored object under ``prefix``, in one walk
        (no half-written ``.tmp-`` files)."""
        root = str(Path(self.root).resolve())
        base = os.path.normpath(os.path.join(root, prefix))
        if base != root and not base.startswith(root + os.sep):
            raise ValueError(f"object prefix {prefix!r} escapes the store root")
        folders = [base if base == root or os.path.isdir(base) else os.path.dirname(base)]
        while folders:
            try:
                entries = list(os.scandir(folders.pop()))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                elif entry.is_file() and not entry.name.startswith(".tmp-"):
                    key = os.path.relpath(entry.path, root).replace(os.sep, "/")
                    if key.startswith(prefix):
                        yield key, entry

    def list_keys(self, prefix: str) -> list[str]:
        return sorted(key for key, _ in self._files(prefix))

    def stamps(self, prefix: str) -> dict[str, str]:
        # the service looks every few seconds: the keys come from the listing under the
        # root, so they are stat-ed as they are, not resolved one by one (27 → 3 ms a look
        # at a year of daily objects)
        found = {}
        for key, entry in self._files(prefix):
            try:
                stat = entry.stat()
            except FileNotFoundError:  # removed since the listing
                continue
            # a rewrite is a rename of a new file: a new inode, mtime and size
            found[key] = f"{stat.st_ino}-{stat.st_mtime_ns}-{stat.st_size}"
        return found

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()


class S3ObjectStore(ObjectStore):
    """A bucket on S3 or an S3-compatible server (`s3.endpoint_url`), via dagster-aws."""

    s3: S3Resource
    bucket: str
    prefix: str = "comfort-assets"
    _client: Any = PrivateAttr(default=None)

    def _key(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/{key}" if self.prefix else key

    def _s3(self) -> Any:
        """One client per store: building a boto3 client costs 0.1–0.6 s here, more than the
        request it would make, and the IO manager makes thousands (docs/pitfalls.md)."""
        if self._client is None:
            self._client = self.s3.get_client()
        return self._client

    def put_bytes(self, key: str, data: bytes) -> None:
        self._s3().put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def create_exclusive(self, key: str, data: bytes) -> None:
        client = self._s3()
        try:
            client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
        except client.exceptions.ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code in {"PreconditionFailed", "ConditionalRequestConflict", "412"}:
                raise ObjectExistsError(key) from err
            raise

    def get_bytes(self, key: str) -> bytes:
        client = self._s3()
        try:
            response = client.get_object(Bucket=self.bucket, Key=self._key(key))
        except client.exceptions.NoSuchKey as err:
            raise FileNotFoundError(f"no object {key!r} in s3://{self.bucket}") from err
        return response["Body"].read()

    def exists(self, key: str) -> bool:
        client = self._s3()
        try:
            client.head_object(Bucket=self.bucket, Key=self._key(key))
        except client.exceptions.ClientError as err:
            if err.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return False
            raise
        return True

    def list_keys(self, prefix: str) -> list[str]:
        paginator = self._s3().get_paginator("list_objects_v2")
        strip = len(self._key(""))
        keys = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            keys.extend(item["Key"][strip:] for item in page.get("Contents", []))
        return sorted(keys)

    def stamps(self, prefix: str) -> dict[str, str]:
        paginator = self._s3().get_paginator("list_objects_v2")
        strip = len(self._key(""))
        found = {}
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            found.update({item["Key"][strip:]: item["ETag"] for item in page.get("Contents", [])})
        return found

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"
