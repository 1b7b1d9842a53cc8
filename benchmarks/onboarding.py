"""Onboarding to VALID against the sandbox: the headless `onboard` as a whole process, side by side
with a shell script that follows Klarna's docs by hand (openssl + curl), against the same sandbox.
Also reports our own time beyond interpreter start and imports. `--short`: one run instead of five."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from _common import SHORT, emit_json, median, onboard_argv, report, run, start_sandbox, throwaway_home

MANUAL = r"""
set -euo pipefail
cd "$WORK"
openssl ecparam -genkey -name prime256v1 -noout -out my-key-file.pem
openssl req -new -key my-key-file.pem -out csr.pem -subj "/CN=$CN"
CSR=$(awk 'BEGIN{ORS="\\n"} {print}' csr.pem)
curl -sf --cacert "$CA" -H "Authorization: Basic $API_TOKEN" -H "Content-Type: application/json" \
  -d "{\"description\":\"manual\",\"config\":{\"usage\":\"MTLS\",\"certificate_signing_request\":\"$CSR\"}}" \
  "$BASE/v2/account/integration/credentials/client-certificate" > created.json
python3 -c 'import json,sys; print(json.load(open("created.json"))["secret"]["certificate"], end="")' > certificate.pem
curl -s -i --cacert "$CA" --cert certificate.pem --key my-key-file.pem -H "Authorization: Basic $API_TOKEN" \
  "$BASE/v2/account/integration/credentials/client-certificate" | grep -i '^klarna-mtls-verification-status: VALID'
"""
IMPORT_FLOOR = (
    "import httpx, cryptography.x509, wizard.cli, wizard.services.session, wizard.klarna.client, wizard.core.crypto"
)


def main(runs: int = 5) -> None:
    if not (shutil.which("openssl") and shutil.which("curl")):
        sys.exit("openssl and curl are needed for the manual side")
    home = throwaway_home()
    ours, manual, floor = [], [], []
    for i in range(runs):
        sb = start_sandbox(home / f"sb{i}")
        try:
            env = {**os.environ, "KLARNA_API_KEY": sb.api_key, "KLARNA_MTLS_HOME": str(home / f"h{i}")}
            seconds, done = run(onboard_argv(sb, f"bench{i}"), env)
            assert done.returncode == 0, done.stderr
            ours.append(seconds)
            work = Path(tempfile.mkdtemp())
            from wizard.core.rules import default_cn

            env2 = {
                **os.environ,
                "WORK": str(work),
                "CA": str(sb.ca_bundle),
                "BASE": sb.base_url,
                "API_TOKEN": sb.api_key,
                "CN": default_cn(sb.account_id),
            }
            seconds, done = run(["bash", "-c", MANUAL], env2)
            assert done.returncode == 0, done.stderr + done.stdout
            manual.append(seconds)
        finally:
            sb.stop()
        seconds, done = run([sys.executable, "-c", IMPORT_FLOOR])
        floor.append(seconds)
    own = median(ours) - median(floor)
    report(
        f"Onboarding to VALID on the sandbox (median of {runs} whole processes)",
        [
            ("klarna-mtls onboard", f"{median(ours):.3f} s"),
            ("docs by hand (openssl + curl)", f"{median(manual):.3f} s"),
            ("ratio", f"{median(ours) / median(manual):.2f}x"),
            ("interpreter + imports floor", f"{median(floor):.3f} s"),
            (
                "our own work beyond the floor",
                f"{own:.3f} s = {own / median(manual):.2f}x of the script (target <= 0.5x)",
            ),
        ],
    )
    emit_json(
        "onboarding",
        {
            "ours_s": median(ours),
            "manual_s": median(manual),
            "floor_s": median(floor),
            "own_ratio": own / median(manual),
        },
    )


if __name__ == "__main__":
    main(runs=1 if SHORT else 5)
