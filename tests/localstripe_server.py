"""localstripe with its state in this run's folder: `python localstripe_server.py DIR [args]`.

localstripe pickles its whole store to the fixed path /tmp/localstripe.pickle on every
change, so two test runs on one machine would write one file. Its Store's two disk methods
are pointed at DIR before the server starts; nothing else of localstripe is changed.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

from localstripe import resources, server


def keep_state_in(folder: Path) -> None:
    state = folder / "localstripe.pickle"

    def load(store: resources.Store) -> None:
        if state.exists():
            store.clear()
            store.update(pickle.loads(state.read_bytes()))

    def dump(store: resources.Store) -> None:
        state.write_bytes(pickle.dumps(dict(store), protocol=pickle.HIGHEST_PROTOCOL))

    resources.Store.try_load_from_disk = load  # type: ignore[method-assign]
    resources.Store.dump_to_disk = dump  # type: ignore[method-assign]


if __name__ == "__main__":
    keep_state_in(Path(sys.argv.pop(1)))
    server.start()
