"""ARM's template language, pure: expressions, functions, whole templates.

``syntax`` parses one expression string, ``functions`` holds the built-in
functions, ``evaluate`` turns a JSON value with expressions into plain JSON,
``plan`` binds parameters, expands ``copy`` loops and orders the resources
by ``dependsOn``; ``hashing`` is ARM's ``uniqueString``/``guid``. Nothing here
does I/O: what a template needs from the world (the resource group, a
deployed resource for ``reference()``) is handed in as data or a callable.
"""
