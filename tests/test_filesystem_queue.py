"""The embedded queue never hands a consumer a message that is still being written.

kombu's own filesystem transport creates the message file, then writes it: a consumer
that lists the folder in between reads an empty payload, and the Celery worker dies of
the decode error (seen in this suite). dlp's transport writes under a ``.part`` name
and renames the file into place.
"""

from __future__ import annotations

from pathlib import Path
from queue import Empty

import pytest
from kombu import Connection

from dlp.config import Settings
from dlp.queue import create_celery_app


def _connection(tmp_path: Path, transport: str | None = None) -> Connection:
    app = create_celery_app(Settings(data_dir=tmp_path))
    return Connection(
        app.conf.broker_url,
        transport=transport or app.conf.broker_transport,
        transport_options=app.conf.broker_transport_options,
    )


def test_a_message_being_written_is_invisible_until_whole(tmp_path: Path) -> None:
    with _connection(tmp_path) as connection:
        channel = connection.default_channel
        folder = Path(channel.data_folder_in)
        # What a writer leaves mid-write: the name consumers skip.
        (folder / "1_abc.torture.msg.part").write_bytes(b"")
        with pytest.raises(Empty):
            channel._get("torture")
        assert channel._size("torture") == 0
        queue = connection.SimpleQueue("torture")
        queue.put({"whole": True})
        assert queue.get(timeout=5).payload == {"whole": True}
        assert [p.name for p in folder.iterdir()] == ["1_abc.torture.msg.part"]


def test_kombus_own_transport_reads_a_half_written_message(tmp_path: Path) -> None:
    # The failure the test above guards against, shown on the stock transport.
    with _connection(tmp_path, transport="filesystem") as connection:
        channel = connection.default_channel
        (Path(channel.data_folder_in) / "1_abc.torture.msg").write_bytes(b"")
        with pytest.raises(ValueError, match="Expecting value"):
            channel._get("torture")
