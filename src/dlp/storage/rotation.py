"""Key rotation: rewrite stored files under the current encryption key.

Each file is streamed through ``EncryptedStore.rewrite`` (read, seal under the current
key, replace on commit), so a run stopped half-way leaves every file whole, and a rerun
skips the files already on the current key. Stored files are written once under their
keys, so the one race is with a deletion: a file deleted while it is rewritten may come
back, as an orphan that housekeeping's orphan sweep removes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dlp.errors import DLPError, NotFoundError
from dlp.storage.encrypted import EncryptedStore

CURRENT = "already on the current key"
OLD_KEY = "rewritten from an old key"
PLAINTEXT = "rewritten from plaintext"
GONE = "deleted meanwhile"
FAILED = "failed"


@dataclass
class RotationReport:
    """How many files a rotation found in each state, and why the failed ones failed."""

    current: int = 0
    old_key: int = 0
    plaintext: int = 0
    gone: int = 0
    failures: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """The counts by outcome, for printing."""
        return {
            CURRENT: self.current,
            OLD_KEY: self.old_key,
            PLAINTEXT: self.plaintext,
            GONE: self.gone,
            FAILED: len(self.failures),
        }


def reencrypt_files(
    store: EncryptedStore, prefix: str, on_file: Callable[[str, str], None] | None = None
) -> RotationReport:
    """Rewrite every file under ``prefix`` that is not sealed with the current key;
    ``on_file(key, outcome)`` hears of each file as it is done."""
    report = RotationReport()
    current = store.keyring.current_id
    for stored in store.iter_keys(prefix):
        try:
            found = store.stored_key_id(stored.key)
            if found == current:
                outcome = CURRENT
                report.current += 1
            else:
                store.rewrite(stored.key)
                if found is None:
                    outcome = PLAINTEXT
                    report.plaintext += 1
                else:
                    outcome = OLD_KEY
                    report.old_key += 1
        except (NotFoundError, FileNotFoundError):  # a local folder deleted mid-rewrite
            outcome = GONE
            report.gone += 1
        except DLPError as exc:
            outcome = FAILED
            report.failures[stored.key] = exc.message
        if on_file is not None:
            on_file(stored.key, outcome)
    return report
