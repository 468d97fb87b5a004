"""The connection to a JestMesh Selection service."""

from __future__ import annotations

import grpc

from ._proto import stub_callable

#: Largest message either way (a candidate super-batch of N = 640 is about 0.6 MB).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class CurationClient:
    """A channel to the Selection service's Curation API and the credential it wants.

    ``address``: ``host:port`` or ``http://host:port`` (plain HTTP/2), ``https://host:port`` (TLS;
    ``ca_file`` is a PEM bundle to trust instead of the system's). ``api_key``: sent as
    ``authorization: Bearer KEY`` on every call. Use as a context manager or call ``close()``.
    """

    def __init__(self, address: str, api_key: str, *, ca_file: str | None = None, options=None):
        if not address:
            raise ValueError("address is empty: pass host:port, http://host:port or https://host:port")
        if not api_key:
            raise ValueError("api_key is empty: `jestmesh up` prints it on its ready line (api_key=...)")
        tls = address.startswith("https://")
        target = address.split("://", 1)[1] if "://" in address else address
        target = target.rstrip("/")
        opts = [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.keepalive_timeout_ms", 20_000),
        ] + list(options or [])
        if tls:
            roots = None
            if ca_file is not None:
                with open(ca_file, "rb") as f:
                    roots = f.read()
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=roots), opts)
        else:
            if ca_file is not None:
                raise ValueError("ca_file is given for a plain-text address: use https://host:port for TLS")
            self._channel = grpc.insecure_channel(target, opts)
        self.address = address
        self.metadata = (("authorization", f"Bearer {api_key}"),)
        self.curate = stub_callable(self._channel, "Curation", "Curate")
        self.stream_batches = stub_callable(self._channel, "Curation", "StreamBatches")

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
