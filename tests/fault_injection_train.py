"""`python -m electra_tf.train` with faults injected through trainer callbacks (tests only).

    python tests/fault_injection_train.py <the binary's flags> \
        [--kill_after_checkpoint=STEP] [--signal_at_step=STEP] [--signal=TERM|INT] \
        [--pause_at_step=STEP --ready_file=PATH --resume_file=PATH]

--kill_after_checkpoint SIGKILLs the process right after ckpt-STEP is written (a crash);
--signal_at_step sends itself SIGTERM or SIGINT once STEP has run (a preemption or Ctrl-C);
--pause_at_step creates --ready_file once STEP has run, then waits until --resume_file
exists (a run holding its model dir while a test starts another one on it).
"""

import os
import signal
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from electra_tf import train  # noqa: E402  (defines the binary's flags)
from electra_tf.training.trainer import Callback  # noqa: E402

flags.DEFINE_integer("kill_after_checkpoint", None, "SIGKILL right after saving this step.")
flags.DEFINE_integer("signal_at_step", None, "Send --signal to this process at this step.")
flags.DEFINE_enum("signal", "TERM", ["TERM", "INT"], "The signal of --signal_at_step.")
flags.DEFINE_integer("pause_at_step", None, "Wait at this step until --resume_file exists.")
flags.DEFINE_string("ready_file", None, "Created when --pause_at_step is reached.")
flags.DEFINE_string("resume_file", None, "The file whose creation ends the pause.")
FLAGS = flags.FLAGS


class KillAfterCheckpoint(Callback):
    def __init__(self, step):
        self.step = step

    def next_boundary(self, step):
        return self.step if step < self.step else None

    def on_checkpoint(self, step, path):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class SignalAtStep(Callback):
    def __init__(self, step, signum):
        self.step, self.signum = step, signum

    def next_boundary(self, step):
        return self.step if step < self.step else None

    def on_loop_end(self, step, result):
        if step == self.step:
            os.kill(os.getpid(), self.signum)
            time.sleep(0.1)  # let the handler run before the loop checks for it


class PauseAtStep(Callback):
    def __init__(self, step, ready_file, resume_file):
        self.step, self.ready_file, self.resume_file = step, ready_file, resume_file

    def next_boundary(self, step):
        return self.step if step < self.step else None

    def on_loop_end(self, step, result):
        if step == self.step:
            open(self.ready_file, "w").close()
            deadline = time.time() + 600
            while not os.path.exists(self.resume_file) and time.time() < deadline:
                time.sleep(0.1)


def main(argv):
    callbacks = []
    if FLAGS.kill_after_checkpoint:
        callbacks.append(KillAfterCheckpoint(FLAGS.kill_after_checkpoint))
    if FLAGS.signal_at_step:
        callbacks.append(SignalAtStep(FLAGS.signal_at_step,
                                      getattr(signal, "SIG" + FLAGS.signal)))
    if FLAGS.pause_at_step:
        callbacks.append(PauseAtStep(FLAGS.pause_at_step, FLAGS.ready_file, FLAGS.resume_file))
    train.main(argv, callbacks=callbacks)


if __name__ == "__main__":
    app.run(main)
