"""What one worker message costs the database thread, measured in-process, without HTTP or a second process.

The server's database thread is the one serial resource at saturation (bench/RESULTS.md), so its cost per
message is the figure to watch when changing the pipeline or the store. This runs exactly what that thread
runs under `helpline serve`: intake batches (one transaction, a savepoint per message, ``Intake._process``),
then the delivery's reads of what is due (which mark SMS sends in doubt) and its batched ``mark_sent`` writes
(``bot.outbox._due``/``_apply``), on a real SQLite file with the data key, the real flows and catalogs, 128
simulated SMS workers walking the rights and complaint flows (bench/walks.py).

    python bench/store_cost.py              # CPU microseconds per message (best of 6 rounds of 2,000)
    python bench/store_cost.py --callgrind  # instructions per message under valgrind: repeatable to ~0.1 %

CPU time on a shared VM moves by 30 % from hour to hour; instruction counts do not (valgrind counts them,
whatever else the machine does). ``--callgrind`` runs this script twice under ``valgrind --tool=callgrind``,
with 200 and 1,200 messages, and divides the difference by 1,000, so start-up (imports, flows, catalogs) drops
out. It takes about 4 minutes; valgrind comes from Debian's package of that name.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.prepopulate import inbound_for, make_pipeline  # noqa: E402
from bench.walks import Mix  # noqa: E402

WORKERS = 128  # as the saturation phase of bench/run.py
BATCH = 100  # about what the intake gathers per transaction at saturation
MARKED = frozenset({"sms"})  # SMS sends are marked in doubt as they are read, as the server does (Twilio can be asked)


class Rig:
    """A store and a pipeline as `helpline serve` makes them, and workers walking the flows."""

    def __init__(self, folder: str):
        from bot.config import load_config
        from bot.intake import Intake
        from bot.security import sealer_for
        from bot.store.sqlite import Store

        config = load_config(None, environ={}).replace(storage={"database": f"{folder}/helpline.db"},
                                                       security={"key_file": f"{folder}/helpline.key"})
        self.store = Store(config.storage.database, sealer_for(config, create=True))
        self.intake = Intake(None, make_pipeline(config))  # only its _process, which runs on the database thread
        self.mix = Mix(0.0)
        self.random = random.Random(1)
        self.workers = [[index, self.mix.next(), 0] for index in range(WORKERS)]
        self.next_index = WORKERS
        self.sequence = 0

    def batch(self) -> list:
        """The next message of ``BATCH`` workers picked at random; a worker at the end of its walk is replaced
        by a new one."""
        inbounds = []
        for worker in self.random.sample(self.workers, BATCH):
            index, walk, step = worker
            self.sequence += 1
            inbounds.append(inbound_for("sms", index, f"SMbench{self.sequence}", walk.steps[step]))
            worker[2] += 1
            if worker[2] == len(walk.steps):
                worker[:] = [self.next_index, self.mix.next(), 0]
                self.next_index += 1
        return inbounds

    def run(self, messages: int) -> None:
        from bot.outbox import _apply, _due
        from bot.store.sqlite import Store

        done = 0
        while done < messages:
            inbounds = self.batch()
            self.intake._process(self.store, inbounds)
            now = datetime.now(UTC)
            due, _ = _due(self.store, now, {"sms": 64}, frozenset(), MARKED)
            while due:  # every reply sent: marked in batches, as the delivery's outcome writer does
                _apply(self.store, [(Store.mark_sent, (p.message_id, f"SMout{p.message_id}", now)) for p in due])
                due, _ = _due(self.store, now, {"sms": 64}, frozenset(), MARKED)
            done += len(inbounds)


def cpu_per_message() -> None:
    with tempfile.TemporaryDirectory() as folder:
        rig = Rig(folder)
        rig.run(2000)  # warm: caches, statements, a database that is not empty
        rounds = []
        for _ in range(6):
            started = time.process_time()
            rig.run(2000)
            rounds.append((time.process_time() - started) / 2000 * 1e6)
        rig.store.close()
    print(f"database thread: {min(rounds):.0f} us CPU per message (best of 6 rounds of 2,000; all: "
          f"{', '.join(f'{r:.0f}' for r in rounds)})")


def instructions_per_message() -> None:
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.exit("valgrind is not installed (apt-get install -y valgrind)")
    counts = {}
    for messages in (200, 1200):
        output = subprocess.run(
            [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
             "--messages", str(messages)], capture_output=True, text=True, check=True).stderr
        counts[messages] = int(re.search(r"Collected : (\d+)", output).group(1))
    per_message = (counts[1200] - counts[200]) / 1000
    print(f"database thread: {per_message / 1e6:.3f} M instructions per message "
          f"(callgrind: {counts[200]:,} for 200 messages, {counts[1200]:,} for 1,200)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callgrind", action="store_true", help="instructions per message under valgrind")
    parser.add_argument("--messages", type=int, help=argparse.SUPPRESS)  # one counted run, for --callgrind
    args = parser.parse_args()
    if args.messages:
        with tempfile.TemporaryDirectory() as folder:
            Rig(folder).run(args.messages)
    elif args.callgrind:
        instructions_per_message()
    else:
        cpu_per_message()


if __name__ == "__main__":
    main()
