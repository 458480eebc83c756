"""What ``scaleset serve`` needs to be safe on a network: TLS material and bearer tokens.

* ``tls``    — a local CA and a server certificate under ``<data-dir>/tls``,
  generated once and reused while they are valid.
* ``tokens`` — bearer tokens (``sst_<id>_<secret>``) with a role, stored only
  as sha256 hashes in the ``tokens`` table.
"""
