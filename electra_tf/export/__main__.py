"""`python -m electra_tf.export`: the export binary (see electra_tf/export/cli.py)."""

from electra_tf.export.cli import run

if __name__ == "__main__":
    run()
