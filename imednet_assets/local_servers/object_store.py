"""moto's S3 server on loopback, for the object-store lake's tests and `make scale-demo`.

moto is a test double of S3: it speaks the S3 API (and IAM, for credentials) well enough for
pyarrow's S3 filesystem; production uses S3, MinIO or GCS's S3 interoperability instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from imednet_assets.local_servers import free_port
from imednet_assets.processes import kill_group

MOTO = Path(sys.executable).parent / "moto_server"
START_TIMEOUT_S = 30
REGION = "us-east-1"
# moto accepts any keys until credentials are enforced; these only create the IAM user
SETUP_KEYS = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
EVERY_S3_ACTION = ("s3:*",)


class MotoS3Server:
    """One `moto_server` process on 127.0.0.1; `stop()` kills it (its data is in memory)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(MOTO), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=2):
                    return
            except OSError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not start on port {self.port}") from exc
                time.sleep(0.1)

    def stop(self) -> None:
        kill_group(self.proc)
        self.proc = None

    def __enter__(self) -> MotoS3Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _client(self, service: str, **keys: str):
        import boto3  # a development dependency, like moto itself

        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=REGION,
                            **(keys or SETUP_KEYS))

    def create_bucket(self, name: str, **keys: str) -> None:
        self._client("s3", **keys).create_bucket(Bucket=name)

    def create_credentials(self, user: str = "lake",
                           actions: tuple[str, ...] = EVERY_S3_ACTION) -> tuple[str, str]:
        """(access key id, secret key) of a new IAM user allowed `actions` on every resource."""
        policy = {"Version": "2012-10-17",
                  "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}]}
        iam = self._client("iam")
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def enforce_credentials(self) -> None:
        """From now on only known keys with a valid signature get in (moto lets anyone in by
        default); call after `create_credentials`."""
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/reset-auth", data=b"0", method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10):
            pass
