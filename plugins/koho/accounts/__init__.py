"""The account registry: loading, mirroring into the ledger, credential checks."""
