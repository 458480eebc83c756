"""What ``scaleset serve`` needs to be safe on a network: TLS material and bearer tokens.

* ``tls``    — a local CA and a server certificate under ``<data-dir>/tls``,
  generated once and reused while they are valid.
* ``tokens`` — bearer tokens (``sst_<id>_<secret>``) with a role, stored only
  as keyed digests (HMAC-SHA256) in the ``tokens`` table.
* ``secrets`` — the keyring (AES-256-GCM) that seals secrets at rest and keys
  token digests: ``SCALESET_SECRETS_KEY`` or ``<data-dir>/secrets.key``.
"""
