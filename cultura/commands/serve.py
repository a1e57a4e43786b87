"""``cultura serve``: the Cultural Palette and culture agents behind an OpenAI-compatible API on Ray Serve."""

from __future__ import annotations

import click

from cultura.commands.common import build_config, config_options, pop_config_args


@click.command()
@click.option("--host", default=None,
              help="HTTP bind address (default from config: 127.0.0.1, this machine only).")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="HTTP port (default from config: 8000).")
@click.option("--write-config", "write_config", type=click.Path(dir_okay=False), default=None,
              help="Write a Serve config file for `serve deploy` or a KubeRay RayService (serveConfigV2) "
                   "and exit without starting anything.")
@click.option("--blocking/--no-blocking", default=True, show_default=True,
              help="Keep running until Ctrl-C (then remove the app), or return and leave the app on the "
                   "Ray cluster (needs --address or ray.address).")
@config_options
def serve(host: str | None, port: int | None, write_config: str | None, blocking: bool, **kwargs) -> None:
    """Serve the models `palette`, `continent/<name>`, `culture/<name>` and `base` over an
    OpenAI-compatible HTTP API (POST /v1/chat/completions, GET /v1/models, POST /v1/palette,
    GET /healthz). Limits, API key and per-deployment autoscaling come from the `serve` section
    of the configuration."""
    from cultura.errors import CulturaError

    config = build_config(**pop_config_args(kwargs), **{"serve.host": host, "serve.port": port})
    if write_config:
        from cultura.serve.app import IMPORT_PATH, write_serve_config

        path = write_serve_config(config, write_config)
        click.echo(f"wrote {path} (import path {IMPORT_PATH}); deploy it with `serve deploy {path}`")
        return
    if not blocking and not config.ray.address:
        raise CulturaError("--no-blocking leaves the app running on a Ray cluster; give --address "
                           "(a local Ray started here stops when this command ends)")
    _run(config, blocking)


def _run(config, blocking: bool) -> None:
    """Start the app, print where it listens and what it serves, and wait for Ctrl-C when blocking."""
    import time

    from cultura.api import serve as start
    from cultura.serve.app import api_key
    from cultura.serve.catalog import culture_adapters, listed_models

    s = config.serve
    models = listed_models(list(culture_adapters(config)))
    key = api_key(config)
    if s.host not in ("127.0.0.1", "localhost", "::1") and key is None:
        click.echo(f"warning: listening on {s.host} without an API key; set ${s.api_key_env} "
                   "(see SECURITY.md)", err=True)
    click.echo(f"starting {len(models)} models on Ray Serve (the first start loads the model and the embedder)...",
               err=True)
    start_time = time.perf_counter()
    url = start(config)
    click.echo(f"OpenAI-compatible API at {url} (ready in {time.perf_counter() - start_time:.0f} s)")
    click.echo(f"models: {', '.join(models)}")
    click.echo(f"API key: {'required (Authorization: Bearer)' if key else 'none'}; "
               f"Palette details: POST {url}/palette; health: {url[:-3]}/healthz")
    if not blocking:
        click.echo(f"the app stays on the cluster; remove it with `serve shutdown` or `serve delete {s.app_name}`")
        return
    click.echo("press Ctrl-C to stop", err=True)
    _stop_on_signals()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        from ray import serve as ray_serve

        click.echo("stopping...", err=True)
        ray_serve.delete(s.app_name)
        click.echo("stopped", err=True)


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM (``kill``, a container stop) both end the wait, even when the shell started
    this command in the background with SIGINT ignored."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
