"""Where an object-store lake lives: an `s3://bucket/prefix` URL on any S3-compatible endpoint,
opened as pyarrow's S3 filesystem. Every read and write of the lake's objects goes through here;
the credentials stay inside (never in a repr, a message or metadata)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from imednet_assets.defs.lake.files import fsync
from imednet_assets.settings import is_object_store_url, redact

TRANSFER_THREADS = 8
"""Objects moved at once: transfers wait on the network, and Arrow releases the GIL."""
CHUNK = 8 << 20

T = TypeVar("T")


class ObjectStore:
    """The bucket and prefix of `url` on `endpoint_url` (None: AWS S3), with the given
    credentials (None: pyarrow's default chain: environment, profile, instance role)."""

    def __init__(
        self, url: str, *, endpoint_url: str | None = None, access_key_id: str | None = None,
        secret_access_key: str | None = None, region: str | None = None,
    ) -> None:
        if not is_object_store_url(url):
            raise ValueError(f"not an object-store URL (s3://bucket/prefix): {redact(url)}")
        parts = urlsplit(url)
        if not parts.netloc:
            raise ValueError(f"no bucket in the lake URL {redact(url)}")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.endpoint_url = endpoint_url or None
        self._access_key_id = access_key_id or None
        self._secret = secret_access_key or None
        self._region = region or None
        self._fs: pafs.S3FileSystem | None = None

    @property
    def url(self) -> str:
        return self.url_of()

    def __repr__(self) -> str:
        endpoint = f", endpoint {redact(self.endpoint_url)}" if self.endpoint_url else ""
        return f"ObjectStore({self.url}{endpoint})"

    def redact(self, text: str) -> str:
        """`text` with the secret key (and any `user:password@` of a URL) hidden."""
        return redact(text, [self._secret])

    @property
    def fs(self) -> pafs.S3FileSystem:
        if self._fs is None:
            options: dict[str, object] = {}
            if self.endpoint_url:
                split = urlsplit(self.endpoint_url)
                if split.scheme:  # http:// for a server on loopback, https:// otherwise
                    options.update(endpoint_override=split.netloc, scheme=split.scheme)
                else:
                    options.update(endpoint_override=self.endpoint_url)
            self._fs = pafs.S3FileSystem(
                access_key=self._access_key_id, secret_key=self._secret, region=self._region,
                # small objects (the manifest) then go up in one PutObject at close
                allow_delayed_open=True, **options,
            )
        return self._fs

    # -- names ------------------------------------------------------------------------------

    def path(self, *parts: str) -> str:
        """`bucket/prefix/parts...`: a path for the filesystem."""
        return "/".join(p for p in (self.bucket, self.prefix, *parts) if p)

    def url_of(self, *parts: str) -> str:
        """`s3://bucket/prefix/parts...`: a name for people (messages, metadata)."""
        return "s3://" + self.path(*parts)

    # -- objects ----------------------------------------------------------------------------

    def get_bytes(self, path: str) -> bytes | None:
        """The object's bytes; None when there is no such object."""
        try:
            with self.fs.open_input_stream(path) as stream:
                return stream.read()
        except FileNotFoundError:
            return None

    def put_bytes(self, path: str, data: bytes) -> None:
        """One object written whole: readers see the old object or this one, nothing between."""
        with self.fs.open_output_stream(path) as stream:
            stream.write(data)

    def upload(self, pairs: Iterable[tuple[Path, str]]) -> None:
        """Local files to object paths, several at once; returns when every one is stored
        with its full size, else raises."""
        pairs = list(pairs)

        def one(pair: tuple[Path, str]) -> None:
            # our own stream, closed in `with`: pyarrow's copy_files drops an error raised when
            # the object is finally written (a refused PutObject), which would pass silently
            with open(pair[0], "rb") as source, self.fs.open_output_stream(pair[1]) as target:
                while chunk := source.read(CHUNK):
                    target.write(chunk)

        self._each(one, pairs)
        infos = self.fs.get_file_info([path for _, path in pairs]) if pairs else []
        for (local, path), info in zip(pairs, infos, strict=True):
            if info.type != pafs.FileType.File or info.size != local.stat().st_size:
                raise OSError(f"s3://{path} is not stored whole after its upload")

    def download(self, pairs: Iterable[tuple[str, Path]]) -> None:
        """Object paths to local files (fsynced), several at once; FileNotFoundError when an
        object is gone."""

        def one(pair: tuple[str, Path]) -> None:
            source, target = pair
            target.parent.mkdir(parents=True, exist_ok=True)
            with self.fs.open_input_stream(source) as stream, open(target, "wb") as out:
                while chunk := stream.read(CHUNK):
                    out.write(chunk)
            fsync(target)

        self._each(one, pairs)

    def list_files(self, prefix: str) -> list[pafs.FileInfo]:
        """Every object under `prefix` (directory markers left out)."""
        selector = pafs.FileSelector(prefix, recursive=True, allow_not_found=True)
        return [i for i in self.fs.get_file_info(selector) if i.type == pafs.FileType.File]

    def delete_file(self, path: str) -> None:
        self.fs.delete_file(path)

    def delete_dir(self, prefix: str) -> None:
        """Every object under `prefix`, and the prefix's own marker."""
        self.fs.delete_dir(prefix)

    @staticmethod
    def _each(fn: Callable[[T], None], items: Iterable[T]) -> None:
        with ThreadPoolExecutor(max_workers=TRANSFER_THREADS) as pool:
            for future in [pool.submit(fn, item) for item in items]:
                future.result()
