"""Ray Serve: the Cultural Palette graph behind an OpenAI-compatible API (``cultura serve``).

``app.build_app(config)`` composes the deployments; ``app.start(config)`` runs them;
``cultura.serve.app:app_builder`` is the import path for ``serve run`` and ``serve deploy``.
Nothing here is imported by the CLI until ``cultura serve`` runs (Ray Serve is heavy).
"""
