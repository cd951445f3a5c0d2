"""kombu's ``filesystem://`` transport with messages written atomically.

kombu creates a message file and then writes into it, and a consumer may move
and read that file in between: it reads an empty payload, and the Celery worker
dies of the decode error. Here a message is written under a name no consumer
matches, then renamed into place, which is atomic on one filesystem.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from time import monotonic
from typing import Any, cast

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils import json as kombu_json

PARTIAL_SUFFIX = ".part"
# kombu's JSON, which also encodes the datetimes and UUIDs messages may carry.
_dumps = cast(Callable[[Any], str], kombu_json.dumps)


class Channel(filesystem.Channel):
    """Puts each message into place whole."""

    # kombu's own base classes disagree on this signature; this is filesystem.Channel's.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # "<id>.<queue>.msg.part" is not "<queue>.msg": consumers skip it until renamed.
        partial = final + PARTIAL_SUFFIX
        try:
            with open(partial, "wb") as handle:
                handle.write(_dumps(payload).encode())
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"cannot add message {final!r} to the queue folder") from exc


class Transport(filesystem.Transport):
    """The filesystem transport with :class:`Channel`."""

    Channel = Channel
