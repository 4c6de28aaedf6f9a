"""``python -m koho.doctor [--json]``: the health check from a shell; exit 1 when something is wrong."""

from __future__ import annotations

import argparse
import json
import sys

from koho.config import load_config
from koho.doctor.findings import Status, summary
from koho.doctor.run import Probe, run_checks


def main(argv: list[str] | None = None, probe: Probe | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m koho.doctor", description="Koho の稼働状態を診断します。")
    parser.add_argument("--json", action="store_true", help="findings as JSON lines instead of the summary")
    args = parser.parse_args(argv)
    findings = run_checks(probe or Probe(config=load_config()))
    if args.json:
        for finding in findings:
            print(json.dumps(finding.as_dict(), ensure_ascii=False))
    else:
        print(summary(findings))
    return 1 if any(f.status is Status.ERROR for f in findings) else 0


if __name__ == "__main__":
    sys.exit(main())
