"""Targets as data: ``spec`` (``TargetSpec``, registered by name) and the bundled target
JSON files in ``builtin/`` (plus ``$CHAMTVM_TARGETS_DIR``). Depends on ``core`` only."""
