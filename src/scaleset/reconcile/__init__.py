"""The imperative shell: observe -> decide -> persist -> act, one scale set at a time.

* ``shell``      — ``Reconciler.reconcile(scale_set_id)``, one level-triggered pass
* ``membership`` — which instances should exist, and their placement
* ``commands``   — what users ask for (create, update, start, cancel, publish)
* ``loop``       — the discrete-event loop that drives passes on a virtual clock
"""
