"""`python -m demo_report --workdir=runs/demo`: every paper's demo on embedded data, one report.

Writes `<workdir>/REPORT.md` with the key tables and PNG plots of each section, and the wall time
of each section. Runs offline on 2 CPU cores.
"""

import sys

from absl import app, flags

import tf_runtime
from demo_report import report

_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Folder for the report and its figures.")


def main(argv):
    del argv
    try:
        report.write_report(_WORKDIR.value)
    except tf_runtime.WorkdirLockedError as error:
        sys.exit(f"demo: {error}")
    except tf_runtime.ConfigMismatchError as error:
        sys.exit(
            f"demo: {_WORKDIR.value} holds runs of another demo configuration: {error} "
            f"Delete {_WORKDIR.value} (or pass another --workdir) to run the demo afresh."
        )


if __name__ == "__main__":
    app.run(main)
