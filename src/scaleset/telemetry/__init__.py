"""What ``scaleset serve`` tells an operator about itself: logs and Prometheus metrics.

``metrics`` holds every metric the server records (one ``Metrics`` object per
server, each with its own registry, so several servers in one process do not
clash); ``logs`` holds the text and JSON log formats and the scrubbing that keeps
secrets out of every log line. This package imports nothing else of scaleset, so
the shell, the drivers, the API and the server can all record into it; the pure
core never does (it performs no I/O and keeps no clock).
"""
