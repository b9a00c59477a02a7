"""Quickstart: grant, revoke, sign, relay and query consent with only `pip install .`.

    export IMAGING_CONSENT_PRIVATE_KEY=0x...   # the patient's key
    export IMAGING_CONSENT_RELAYER_KEY=0x...   # any funded account; pays for the signed consent
    python examples/consent_quickstart.py --rpc-url http://127.0.0.1:8545 \
        --manifest deployments/1337.json --grantee 0x...

Keys come from the environment, never from the command line (where shell history keeps them).
The patient needs ETH only for the direct grant and revoke; the signed consent costs them nothing.
"""

from __future__ import annotations

import argparse
import sys

from imaging_consent.chain import connect, key_from_env
from imaging_consent.consent import ConsentClient, Purpose
from imaging_consent.contracts.deployment import load, sender_for
from imaging_consent.errors import ImagingConsentError

RELAYER_KEY_ENV = "IMAGING_CONSENT_RELAYER_KEY"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rpc-url", required=True, help="JSON-RPC endpoint of the chain")
    parser.add_argument("--manifest", required=True, help="deployments/<chainId>.json")
    parser.add_argument("--grantee", required=True, help="address to grant access to")
    args = parser.parse_args()

    # 1. Connect, and bind to the deployed contracts named in the manifest.
    session = connect(args.rpc_url)
    suite = load(session, args.manifest)
    patient = key_from_env()  # IMAGING_CONSENT_PRIVATE_KEY
    relayer = key_from_env(RELAYER_KEY_ENV)
    print(f"chain {session.chain_id}, ConsentRegistry {suite.consent.address}")

    # 2. The patient grants and revokes with ordinary transactions (and pays the gas).
    as_patient = ConsentClient(suite, sender_for(session, patient))
    receipt = as_patient.grant(args.grantee, None, [Purpose.TREAT], identified=True)
    print(f"granted TREAT on all studies in block {receipt.block_number}")
    receipt = as_patient.revoke(args.grantee, None)
    print(f"revoked in block {receipt.block_number}")

    # 3. The patient signs an EIP-712 consent for one study (a wallet would show this typed
    #    data); anyone relays it and pays the gas. A signature is ordered by its issuedAt
    #    (chain time): it applies only if it is newer than the grant's last change.
    study_key = bytes.fromhex("ab" * 32)  # a study key, as the site registered it
    signed = as_patient.sign_grant(
        patient.address, args.grantee, study_key, ["HRESCH"], identified=False, key=patient
    )
    as_relayer = ConsentClient(suite, sender_for(session, relayer))
    receipt = as_relayer.relay_grant(signed)
    print(f"relayed signed grant (issued at {signed.issued_at}) in block {receipt.block_number}")

    # 4. Query: one call for "may they, now?", and the full history from events.
    answer = as_relayer.is_permitted(patient.address, args.grantee, study_key, "HRESCH")
    print(f"is_permitted HRESCH: {answer.permitted} (identified: {answer.identified})")
    history = as_relayer.grants_of(patient.address)
    print(f"history: {', '.join(event.kind for event in history.events)}")
    for grant in history.current:
        purposes = ",".join(sorted(p.name for p in grant.purposes))
        print(f"current grant to {grant.grantee}: {purposes}, identified={grant.identified}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ImagingConsentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
